#!/usr/bin/python3
"""Writes tiny test packages for the loader tests: one valid, six broken.

    /usr/bin/python3 models/tools/make_tiny.py --out DIR [--seed 0]

DIR/tiny_branchy           valid: input [1,8,8], 3 blocks, exits after 0 and 2,
                           4 classes, random (seeded) weights.
DIR/broken_missing_blocks  model.pt has `stages` instead of `blocks`.
DIR/broken_exit_key        model.pt exits has key "7" (only 3 blocks).
DIR/broken_no_final_exit   model.pt has no exit after the last block (no "2").
DIR/broken_input_shape     config input dims [1,9,9]; block 0 applies a
                           Linear(8, 8) over the last dim, so [B,1,9,9] fails
                           in block 0.
DIR/broken_num_blocks      config num_blocks 5; model.pt has 3 blocks.
DIR/broken_config          config.pbtxt has a syntax error.

Each broken package differs from tiny_branchy in that one respect only (same
weights, same otherwise-valid config, with its own name). All are a few KB.
"""

import argparse
import os
import shutil
import sys
from typing import Dict, List

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import progressive as pg  # noqa: E402

NUM_CLASSES = 4


def tiny_parts():
    """Blocks and exit heads of tiny_branchy (call after seeding)."""
    blocks = [
        # [B,1,8,8] -> [B,4,8,8]; the Linear over the last dim pins width 8.
        nn.Sequential(pg.Normalize([0.5], [0.25]), nn.Linear(8, 8),
                      nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
        # -> [B,8,4,4]
        nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU()),
        # -> [B,16]
        nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU()),
    ]
    exits = {
        0: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, NUM_CLASSES)),
        2: nn.Linear(16, NUM_CLASSES),
    }
    return blocks, exits


class NoBlocksNet(nn.Module):
    """Like ProgressiveNet but the block list is called `stages`."""

    def __init__(self, blocks, exits: Dict[int, nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(blocks)
        self.exits = nn.ModuleDict([(str(k), v) for k, v in sorted(exits.items())])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.stages:
            x = block(x)
        out = x
        for key, head in self.exits.items():
            if key == "2":
                out = head(x)
        return out


class RawNet(nn.Module):
    """`blocks` and `exits` with arbitrary keys; forward runs the blocks, then
    the head keyed `final_key` if there is one (else returns the features)."""

    final_key: str

    def __init__(self, blocks, exits: Dict[str, nn.Module], final_key: str):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.exits = nn.ModuleDict(list(exits.items()))
        self.final_key = final_key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        out = x
        for key, head in self.exits.items():
            if key == self.final_key:
                out = head(x)
        return out


def tiny_config(name: str, **overrides) -> pg.ModelConfig:
    cfg = pg.ModelConfig(
        name=name,
        description="Tiny untrained progressive model for loader and runtime tests "
                    "(random weights).",
        trained=False,
        max_batch_size=8,
        input=pg.TensorConfig("image", "FP32", [1, 8, 8]),
        num_blocks=3,
        exits=[pg.ExitConfig(block=0, threshold=0.5), pg.ExitConfig(block=2, threshold=0.0)],
        labels=[f"class_{i}" for i in range(NUM_CLASSES)],
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output directory (a model repository)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    blocks, exits = tiny_parts()
    example = torch.rand(2, 1, 8, 8)

    # Valid package (fully verified).
    good = pg.ProgressiveNet(blocks, exits)
    written: List[str] = [pg.save_package(good, tiny_config("tiny_branchy"), args.out,
                                          "tiny_branchy", example=example)]

    def broken(name, module, cfg, config_text=None):
        path = pg.save_package(module, cfg, args.out, name, verify=False)
        if config_text is not None:
            pg._write_text_atomic(os.path.join(path, "config.pbtxt"), config_text)
        written.append(path)

    broken("broken_missing_blocks", NoBlocksNet(blocks, exits),
           tiny_config("broken_missing_blocks"))
    broken("broken_exit_key",
           RawNet(blocks, {"0": exits[0], "2": exits[2],
                           "7": nn.Linear(16, NUM_CLASSES)}, "2"),
           tiny_config("broken_exit_key"))
    broken("broken_no_final_exit", RawNet(blocks, {"0": exits[0]}, "2"),
           tiny_config("broken_no_final_exit"))
    broken("broken_input_shape", pg.ProgressiveNet(blocks, exits),
           tiny_config("broken_input_shape",
                       input=pg.TensorConfig("image", "FP32", [1, 9, 9])))
    broken("broken_num_blocks", pg.ProgressiveNet(blocks, exits),
           tiny_config("broken_num_blocks", num_blocks=5))
    bad_text = pg.format_config(tiny_config("broken_config")).replace(
        "num_blocks: 3", "num_blocks: 3 {{ oops", 1)
    broken("broken_config", pg.ProgressiveNet(blocks, exits),
           tiny_config("broken_config"), config_text=bad_text)

    # Self-check: the broken packages really are broken in their one way.
    def fails(fn) -> bool:
        try:
            fn()
        except Exception:  # noqa: BLE001 - any failure counts
            return True
        return False

    m = torch.jit.load(os.path.join(args.out, "broken_input_shape", "1", "model.pt"))
    block0 = dict(m.blocks.named_children())["0"]
    assert not fails(lambda: block0(torch.rand(1, 1, 8, 8)))
    assert fails(lambda: block0(torch.rand(1, 1, 9, 9)))
    for name in ("broken_missing_blocks", "broken_exit_key", "broken_no_final_exit"):
        m = torch.jit.load(os.path.join(args.out, name, "1", "model.pt"))
        assert fails(lambda: pg.verify_module(m, tiny_config(name), example)), name
    m = torch.jit.load(os.path.join(args.out, "broken_num_blocks", "1", "model.pt"))
    assert fails(lambda: pg.verify_module(m, tiny_config("broken_num_blocks", num_blocks=5),
                                          example))
    if shutil.which("protoc"):
        assert pg.check_config_text(bad_text) is not None

    for path in written:
        size = sum(os.path.getsize(os.path.join(d, f))
                   for d, _, fs in os.walk(path) for f in fs)
        print(f"wrote {path} ({size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
