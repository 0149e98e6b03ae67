#!/usr/bin/python3
"""Exports torchvision's AlexNet and VGG-16 (untrained) as Tandem packages.

    /usr/bin/python3 models/tools/export_zoo.py --out REPO_DIR \
        [--models alexnet,vgg16] [--seed 0]

Models a user brings rather than designs for Tandem: the torchvision
architectures as they are (`torchvision.models.alexnet` / `vgg16`, built with
`weights=None` after `torch.manual_seed(seed)`), cut into blocks at their
max-pool layers. Each block but the last ends with one MaxPool2d of
`features` (AlexNet has 3, VGG-16 has 5); the last block is avgpool + flatten +
classifier and returns the logits, so there is no early exit and the final
head is the identity ProgressiveNet adds. Block 0 starts with ImageNet
normalization, so the input is [B,3,224,224] FP32 in [0,1]. 1000 classes.

The weights are random: the models are for systems work (latency, transfer
sizes, split points), not for their predictions. Needs python3-torchvision.
Writes, for each model NAME (alexnet: 4 blocks, ~233 MiB; vgg16: 6 blocks,
~528 MiB):

    REPO_DIR/NAME/config.pbtxt
    REPO_DIR/NAME/1/model.pt
"""

import argparse
import os
import sys
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import progressive as pg  # noqa: E402

NUM_CLASSES = 1000
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
INPUT_DIMS = [3, 224, 224]
MAX_BATCH_SIZE = 8


def _torchvision_models():
    try:
        import torchvision
    except ImportError:
        sys.exit("export_zoo.py needs torchvision (Debian: apt-get install python3-torchvision)")
    return torchvision.models


# Model name -> constructor of the untrained torchvision network.
ZOO: Dict[str, Callable[[], nn.Module]] = {
    "alexnet": lambda: _torchvision_models().alexnet(weights=None),
    "vgg16": lambda: _torchvision_models().vgg16(weights=None),
}
TITLES = {"alexnet": "AlexNet", "vgg16": "VGG-16"}


def cut_at_maxpools(net: nn.Module) -> List[nn.Module]:
    """Blocks of a torchvision AlexNet/VGG: `features` cut after each
    MaxPool2d, then avgpool + flatten + classifier. Block 0 normalizes."""
    blocks: List[nn.Module] = []
    current: List[nn.Module] = [pg.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    for layer in net.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(*current))
            current = []
    if current:
        raise ValueError(f"`features` does not end with a MaxPool2d: {current}")
    blocks.append(nn.Sequential(net.avgpool, nn.Flatten(1), net.classifier))
    return blocks


def build_model(name: str, seed: int) -> pg.ProgressiveNet:
    torch.manual_seed(seed)
    net = ZOO[name]()
    # No exits given: the last block emits logits, ProgressiveNet adds the
    # identity head after it.
    return pg.ProgressiveNet(cut_at_maxpools(net), {}).eval()


def export(name: str, repo: str, seed: int) -> None:
    t0 = time.time()
    model = build_model(name, seed)
    n = len(model.blocks)
    pools = n - 1
    config = pg.ModelConfig(
        name=name,
        description=(f"{TITLES[name]} (torchvision architecture), 224x224 RGB input, {n} "
                     f"blocks: features cut after each of its {pools} max-pool layers, then "
                     "avgpool + classifier; no early exit, 1000 classes. UNTRAINED: random "
                     f"weights (seed {seed}); its predictions are meaningless. For systems "
                     "work: tensor sizes and compute of a model users bring."),
        trained=False,
        max_batch_size=MAX_BATCH_SIZE,
        input=pg.TensorConfig("image", "FP32", INPUT_DIMS),
        num_blocks=n,
        exits=[pg.ExitConfig(block=n - 1, threshold=0.0)],
        labels=[f"class_{i}" for i in range(NUM_CLASSES)],
    )
    path = pg.save_package(model, config, repo, name)
    seconds = time.time() - t0

    print(f"{name}: {n} blocks, {pg.count_parameters(model)} parameters")
    with torch.no_grad():
        x = torch.rand([1] + INPUT_DIMS)
        for i, block in enumerate(model.blocks):
            x = block(x)
            print(f"  block {i} -> {list(x.shape[1:])} ({x.numel() * 4 / 1024:.0f} KiB FP32)"
                  + (", exit" if str(i) in model.exits else ""))
    size = os.path.getsize(os.path.join(path, "1", "model.pt"))
    print(f"wrote {path} ({size / 2**20:.1f} MiB model.pt) in {seconds:.1f}s", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="model repository directory")
    p.add_argument("--models", default=",".join(ZOO),
                   help=f"comma-separated, from {', '.join(ZOO)} (default: all)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in ZOO]
    if unknown or not names:
        p.error(f"--models: unknown {unknown}; choose from {', '.join(ZOO)}")
    for name in names:
        export(name, args.out, args.seed)


if __name__ == "__main__":
    main()
