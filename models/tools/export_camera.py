#!/usr/bin/python3
"""Exports `camera_branchy`: an untrained ResNet-18-like progressive network.

    /usr/bin/python3 models/tools/export_camera.py --out REPO_DIR [--seed 0]

Input [B,3,224,224] FP32 in [0,1] (ImageNet normalization inside block 0).
Blocks: stem (conv7x7/2 + BN + ReLU + maxpool), layer1, layer2, layer3, layer4
(ResNet-18 basic blocks, two per layer). Early exits after layer1, layer2 and
layer3 (conv1x1 reduce + BN + ReLU + global average pool + linear), final exit
after layer4 (global average pool + linear), 1000 classes.

The weights are random (seeded): the model has the tensor sizes and compute
of a real edge-camera workload and is meant for systems work (latency,
transfer sizes, scheduling), not for its predictions. Writes

    REPO_DIR/camera_branchy/config.pbtxt
    REPO_DIR/camera_branchy/1/model.pt
"""

import argparse
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import progressive as pg  # noqa: E402

MODEL_NAME = "camera_branchy"
NUM_CLASSES = 1000
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
EARLY_THRESHOLD = 0.9


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


def layer(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


def early_head(cin: int, reduce: int = 128) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, reduce, 1, bias=False), nn.BatchNorm2d(reduce), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(reduce, NUM_CLASSES))


def build_model() -> pg.ProgressiveNet:
    stem = nn.Sequential(
        pg.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),   # -> 64x112x112
        nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1))                   # -> 64x56x56
    blocks = [
        stem,
        layer(64, 64, 1),     # -> 64x56x56
        layer(64, 128, 2),    # -> 128x28x28
        layer(128, 256, 2),   # -> 256x14x14
        layer(256, 512, 2),   # -> 512x7x7
    ]
    exits = {
        1: early_head(64),
        2: early_head(128),
        3: early_head(256),
        4: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, NUM_CLASSES)),
    }
    model = pg.ProgressiveNet(blocks, exits)
    # torchvision-style initialization, so activations stay in a sane range.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="model repository directory")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    t0 = time.time()
    torch.manual_seed(args.seed)
    model = build_model()
    exit_blocks = model.exit_blocks()
    config = pg.ModelConfig(
        name=MODEL_NAME,
        description=("ResNet-18-like progressive network, 224x224 RGB input, 5 blocks "
                     "(stem, layer1-4), early exits after layer1, layer2 and layer3, "
                     f"1000 classes. UNTRAINED: random weights (seed {args.seed}); its "
                     "predictions, thresholds and accuracies are meaningless. For systems "
                     "work: tensor sizes and compute like a real edge camera workload."),
        trained=False,
        # The largest batch worth running on the 2-core CPUs this project is
        # measured on: served through the cloud, batches of 2 raise the
        # tail's throughput about 1.2x, while batches of 4 already fall below
        # a lone request's, as activations outgrow the caches (load bench,
        # README). The cloud's batcher keeps each model's batches within its
        # own max_batch_size.
        max_batch_size=2,
        input=pg.TensorConfig("image", "FP32", [3, 224, 224]),
        num_blocks=len(model.blocks),
        exits=[pg.ExitConfig(block=b, threshold=0.0 if b == exit_blocks[-1] else EARLY_THRESHOLD)
               for b in exit_blocks],
        labels=[f"class_{i}" for i in range(NUM_CLASSES)],
    )
    path = pg.save_package(model, config, args.out, MODEL_NAME)

    # Summary: per-block output shapes, as a sanity check and for reference.
    with torch.no_grad():
        x = torch.rand(1, 3, 224, 224)
        print(f"{MODEL_NAME}: {pg.count_parameters(model)} parameters")
        for i, block in enumerate(model.blocks):
            x = block(x)
            print(f"  block {i} -> {list(x.shape[1:])} ({x.numel() * 4 / 1024:.0f} KiB FP32)"
                  + (f", exit" if str(i) in model.exits else ""))
    print(f"wrote {path} ({os.path.getsize(os.path.join(path, '1', 'model.pt')) / 2**20:.1f} "
          f"MiB model.pt) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
