#!/usr/bin/python3
"""Trains `fmnist_branchy`, a progressive CNN for Fashion-MNIST, and packages it.

    /usr/bin/python3 models/tools/train_fmnist.py --out REPO_DIR \
        [--epochs 8] [--seed 0] [--data_dir /usr/share/datasets/fashion-mnist] \
        [--accuracy_drop 0.25] [--criterion relative|absolute] [--threads 2]

Four blocks with exits after blocks 0, 1 and 2 plus the final exit after
block 3, trained jointly (weighted sum of the exits' cross-entropy losses).
The last 5,000 training images are held back for validation; the early exits'
thresholds are calibrated there, in cascade order, then the cascade is
measured on the 10,000 test images. Writes

    REPO_DIR/fmnist_branchy/config.pbtxt
    REPO_DIR/fmnist_branchy/1/model.pt
    REPO_DIR/fmnist_branchy/1/training_report.json

Deterministic for a given seed, thread count and machine. About 3 minutes on
two CPU cores.
"""

import argparse
import json
import os
import platform
import sys
import time

# Sleep rather than spin in OpenMP barriers: when other processes compete for
# the cores (a parallel build), spinning threads make training several times
# slower. Must be set before torch loads libgomp; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import progressive as pg  # noqa: E402

MODEL_NAME = "fmnist_branchy"
VAL_SIZE = 5000
# Fashion-MNIST training-set pixel statistics (of pixel/255).
MEAN, STD = 0.2860, 0.3530


def conv_bn(cin, cout, pool):
    layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
              nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers


def build_model():
    blocks = [
        # [B,1,28,28] -> [B,16,14,14]
        nn.Sequential(pg.Normalize([MEAN], [STD]), *conv_bn(1, 16, True)),
        # -> [B,32,7,7]
        nn.Sequential(*conv_bn(16, 32, True)),
        # -> [B,64,3,3]
        nn.Sequential(*conv_bn(32, 64, True)),
        # -> [B,128]
        nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 128), nn.ReLU(inplace=True)),
    ]
    exits = {
        0: nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10)),
        1: nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 10)),
        2: nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 10)),
        3: nn.Sequential(nn.Dropout(0.2), nn.Linear(128, 10)),
    }
    return pg.ProgressiveNet(blocks, exits)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="model repository directory")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_dir", default=pg.DEFAULT_FMNIST_DIR)
    p.add_argument("--accuracy_drop", type=float, default=0.25,
                   help="percentage points of accuracy an early exit may lose on the "
                        "samples it takes (default 0.25)")
    p.add_argument("--criterion", choices=pg.CRITERIA, default="relative",
                   help="absolute: an early exit's accuracy on the samples it takes must "
                        "be >= the final exit's validation accuracy - accuracy_drop; "
                        "relative: >= the final exit's accuracy on those same samples - "
                        "accuracy_drop (bounds the cascade's loss; fewer early exits)")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    p.add_argument("--exit_weights", default="0.3,0.3,0.3,1.0",
                   help="loss weights of the exits, ascending block order")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    return p.parse_args()


def main():
    args = parse_args()
    t_start = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)

    data = pg.load_fashion_mnist(args.data_dir)
    n_train = len(data["train_images"]) - VAL_SIZE
    x_train = pg.to_input(data["train_images"][:n_train])
    y_train = torch.from_numpy(data["train_labels"][:n_train])
    x_val = pg.to_input(data["train_images"][n_train:])
    y_val = torch.from_numpy(data["train_labels"][n_train:])
    x_test = pg.to_input(data["test_images"])
    y_test = torch.from_numpy(data["test_labels"])

    model = build_model()
    exit_blocks = model.exit_blocks()
    weights = [float(w) for w in args.exit_weights.split(",")]
    if len(weights) != len(exit_blocks):
        sys.exit(f"--exit_weights needs {len(exit_blocks)} values, got {len(weights)}")

    steps_per_epoch = (n_train + args.batch_size - 1) // args.batch_size
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=0.2)
    order_gen = torch.Generator().manual_seed(args.seed)

    print(f"{MODEL_NAME}: {pg.count_parameters(model)} parameters, exits after blocks "
          f"{exit_blocks}, train {n_train} / val {len(y_val)} / test {len(y_test)}, "
          f"{args.threads} threads", flush=True)
    history = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        model.train()
        perm = torch.randperm(n_train, generator=order_gen)
        total, seen = 0.0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            outs = model.forward_exits(xb)
            loss = sum(w * F.cross_entropy(o, yb) for w, o in zip(weights, outs))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            seen += len(idx)
        val_acc = pg.exit_accuracies(pg.evaluate_exits(model, x_val), y_val)
        dt = time.time() - t0
        history.append({"epoch": epoch, "loss": total / seen, "seconds": dt,
                        "val_accuracy": {str(k): v for k, v in val_acc.items()}})
        accs = " ".join(f"exit{k}={100 * v:.2f}%" for k, v in val_acc.items())
        print(f"epoch {epoch}/{args.epochs} loss {total / seen:.4f} val {accs} "
              f"{dt:.1f}s", flush=True)
    train_seconds = time.time() - t_start

    # Calibration on the validation split.
    model.eval()
    val_probs = pg.evaluate_exits(model, x_val)
    val_acc = pg.exit_accuracies(val_probs, y_val)
    final_block = exit_blocks[-1]
    target = val_acc[final_block] - args.accuracy_drop / 100.0
    cal = pg.calibrate_cascade(val_probs, y_val, args.accuracy_drop / 100.0,
                               criterion=args.criterion)

    # Test: each head alone, and the cascade at the chosen thresholds.
    test_probs = pg.evaluate_exits(model, x_test)
    test_acc = pg.exit_accuracies(test_probs, y_test)
    thresholds = {c.block: c.threshold for c in cal}
    cascade_acc, cascade_rates = pg.cascade_eval(test_probs, y_test, thresholds)

    exits_cfg = [pg.ExitConfig(block=c.block, threshold=c.threshold,
                               test_accuracy=test_acc[c.block], exit_rate=c.exit_rate,
                               exited_accuracy=c.exited_accuracy, calibration=c.points)
                 for c in cal]
    config = pg.ModelConfig(
        name=MODEL_NAME,
        description=(f"Progressive CNN for Fashion-MNIST (4 blocks, exits after blocks "
                     f"{', '.join(map(str, exit_blocks))}), jointly trained {args.epochs} "
                     f"epochs, seed {args.seed}; early-exit thresholds calibrated on the "
                     f"last {VAL_SIZE} training images ({args.criterion} criterion, "
                     f"accuracy drop {args.accuracy_drop:g} points)."),
        trained=True,
        max_batch_size=64,
        input=pg.TensorConfig("image", "FP32", [1, 28, 28]),
        num_blocks=len(model.blocks),
        exits=exits_cfg,
        labels=pg.FMNIST_LABELS,
        cascade_test_accuracy=cascade_acc,
        cascade_test_exit_rates=cascade_rates,
        cascade_calibration=pg.cascade_calibration(val_probs, y_val),
    )
    report = {
        "model": MODEL_NAME,
        "args": vars(args),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "parameters": pg.count_parameters(model),
        "train_seconds": train_seconds,
        "history": history,
        "validation": {
            "exit_accuracy": {str(k): v for k, v in val_acc.items()},
            "criterion": args.criterion,
            "target_accuracy": target if args.criterion == "absolute" else None,
        },
        "exits": [{"block": c.block, "threshold": c.threshold,
                   "val_exit_rate": c.exit_rate, "val_exited_accuracy": c.exited_accuracy,
                   "test_accuracy": test_acc[c.block], "test_exit_rate": r,
                   "calibration": [vars(p) for p in c.points]}
                  for c, r in zip(cal, cascade_rates)],
        "test": {
            "final_exit_accuracy": test_acc[final_block],
            "cascade_accuracy": cascade_acc,
            "cascade_exit_rates": cascade_rates,
        },
    }
    path = pg.save_package(model, config, args.out, MODEL_NAME,
                           extra_files={"training_report.json":
                                        json.dumps(report, indent=2) + "\n"},
                           example=x_test[:8])

    if args.criterion == "absolute":
        target_text = f"early-exit target {100 * target:.2f}%"
    else:
        target_text = (f"early-exit target: final exit's accuracy on the exited samples "
                       f"- {args.accuracy_drop:g} points")
    print(f"\nvalidation: final exit {100 * val_acc[final_block]:.2f}%, {target_text}")
    print(f"{'exit block':>10} {'threshold':>10} {'test acc alone':>15} "
          f"{'cascade exit rate':>18}")
    for c, r in zip(cal, cascade_rates):
        print(f"{c.block:>10} {c.threshold:>10.3g} {100 * test_acc[c.block]:>14.2f}% "
              f"{100 * r:>17.2f}%")
    print(f"cascade test accuracy {100 * cascade_acc:.2f}% "
          f"(final exit alone {100 * test_acc[final_block]:.2f}%)")
    print(f"wrote {path} in {time.time() - t_start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
