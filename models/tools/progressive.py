"""Shared tooling for Tandem progressive-model packages.

A package is a Triton-style model repository entry:

    <repo>/<model>/config.pbtxt      tandem.v1.ModelConfig, protobuf text format
    <repo>/<model>/<version>/model.pt TorchScript module with `blocks` and `exits`

See docs/model_format.md for the format. This module holds what the export
scripts share: IDX (MNIST-style) loading, the config dataclasses and their
text writer, exit evaluation, cascade calibration, and `save_package`, which
scripts, saves, reloads and verifies a package before it appears under its
final name.

Requires PyTorch and numpy (on Debian: /usr/bin/python3 with python3-torch).
"""

import dataclasses
import gzip
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

PLATFORM = "tandem_torchscript"

DEFAULT_FMNIST_DIR = "/usr/share/datasets/fashion-mnist"

FMNIST_LABELS = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]

# Confidence thresholds swept during calibration (max softmax probability).
DEFAULT_THRESHOLDS = [
    0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
    0.97, 0.99, 0.995, 0.999,
]

_PROTO_PATH = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto",
    "tandem", "v1", "model_config.proto"))


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

_IDX_DTYPES = {
    0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def load_idx(path: str) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x}")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[type_code])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims)) if dims else 1
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: expected {count * dtype.itemsize} payload "
                         f"bytes for dims {dims}, found {len(data) - offset}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    # astype copies: the result is writable and in native byte order.
    return arr.reshape(dims).astype(dtype.newbyteorder("="))


def load_fashion_mnist(data_dir: str = DEFAULT_FMNIST_DIR) -> Dict[str, np.ndarray]:
    """Returns uint8 images [N,28,28] and int64 labels [N] for train and test."""
    def path(stem: str) -> str:
        for name in (stem + ".gz", stem):
            p = os.path.join(data_dir, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(os.path.join(data_dir, stem + ".gz"))

    out = {
        "train_images": load_idx(path("train-images-idx3-ubyte")),
        "train_labels": load_idx(path("train-labels-idx1-ubyte")).astype(np.int64),
        "test_images": load_idx(path("t10k-images-idx3-ubyte")),
        "test_labels": load_idx(path("t10k-labels-idx1-ubyte")).astype(np.int64),
    }
    for split in ("train", "test"):
        if len(out[f"{split}_images"]) != len(out[f"{split}_labels"]):
            raise ValueError(f"{split}: image and label counts differ")
    return out


def to_input(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W] -> FP32 [N,1,H,W] in [0,1], the models' input convention."""
    return torch.from_numpy(np.ascontiguousarray(images_u8)).float().div_(255.0).unsqueeze(1)


# ---------------------------------------------------------------------------
# Config (tandem.v1.ModelConfig) and its text format
# ---------------------------------------------------------------------------

@dataclass
class CalibrationPoint:
    threshold: float
    exit_rate: float
    accuracy: float


@dataclass
class ExitConfig:
    block: int
    threshold: float = 0.0
    test_accuracy: float = 0.0
    exit_rate: float = 0.0
    exited_accuracy: float = 0.0
    calibration: List[CalibrationPoint] = field(default_factory=list)


@dataclass
class CascadePoint:
    threshold: float
    exit_rates: List[float]
    accuracy: float


@dataclass
class TensorConfig:
    name: str
    datatype: str
    dims: List[int]


@dataclass
class ModelConfig:
    name: str
    input: TensorConfig
    num_blocks: int
    exits: List[ExitConfig]
    labels: List[str]
    platform: str = PLATFORM
    description: str = ""
    trained: bool = False
    max_batch_size: int = 0
    cascade_test_accuracy: float = 0.0
    cascade_test_exit_rates: List[float] = field(default_factory=list)
    cascade_calibration: List[CascadePoint] = field(default_factory=list)


def _q(s: str) -> str:
    """Quotes a string for protobuf text format."""
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\%03o" % ord(ch))
        else:
            out.append(ch)
    # Non-ASCII characters are written as UTF-8 octal escapes so that the
    # file stays ASCII.
    text = "".join(out)
    if any(ord(c) > 0x7F for c in text):
        text = "".join(c if ord(c) <= 0x7F else "".join("\\%03o" % b for b in c.encode("utf-8"))
                       for c in text)
    return '"' + text + '"'


def _f(x: float) -> str:
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError(f"non-finite float in config: {x}")
    return "%.6g" % x


def _b(x: bool) -> str:
    return "true" if x else "false"


def _as_config(cfg: Union[ModelConfig, Mapping]) -> ModelConfig:
    """Accepts a ModelConfig or a plain dict of the same shape."""
    if isinstance(cfg, ModelConfig):
        return cfg
    d = dict(cfg)
    inp = d["input"]
    if not isinstance(inp, TensorConfig):
        inp = TensorConfig(**dict(inp))
    exits = []
    for e in d.get("exits", []):
        if isinstance(e, ExitConfig):
            exits.append(e)
            continue
        e = dict(e)
        cal = [c if isinstance(c, CalibrationPoint) else CalibrationPoint(**dict(c))
               for c in e.pop("calibration", [])]
        exits.append(ExitConfig(calibration=cal, **e))
    d["input"] = inp
    d["exits"] = exits
    return ModelConfig(**d)


def format_config(cfg: Union[ModelConfig, Mapping]) -> str:
    """Renders a ModelConfig (or dict) as tandem.v1.ModelConfig text format."""
    c = _as_config(cfg)
    lines = [
        f"name: {_q(c.name)}",
        f"platform: {_q(c.platform)}",
        f"description: {_q(c.description)}",
        f"trained: {_b(c.trained)}",
        f"max_batch_size: {int(c.max_batch_size)}",
        "input {",
        f"  name: {_q(c.input.name)}",
        f"  datatype: {_q(c.input.datatype)}",
        "  dims: [" + ", ".join(str(int(d)) for d in c.input.dims) + "]",
        "}",
        f"num_blocks: {int(c.num_blocks)}",
    ]
    for e in sorted(c.exits, key=lambda e: e.block):
        lines += [
            "exits {",
            f"  block: {int(e.block)}",
            f"  threshold: {_f(e.threshold)}",
            f"  test_accuracy: {_f(e.test_accuracy)}",
            f"  exit_rate: {_f(e.exit_rate)}",
            f"  exited_accuracy: {_f(e.exited_accuracy)}",
        ]
        for p in sorted(e.calibration, key=lambda p: p.threshold):
            lines.append(f"  calibration {{ threshold: {_f(p.threshold)} "
                         f"exit_rate: {_f(p.exit_rate)} accuracy: {_f(p.accuracy)} }}")
        lines.append("}")
    for label in c.labels:
        lines.append(f"labels: {_q(label)}")
    lines.append(f"cascade_test_accuracy: {_f(c.cascade_test_accuracy)}")
    if c.cascade_test_exit_rates:
        lines.append("cascade_test_exit_rates: ["
                     + ", ".join(_f(r) for r in c.cascade_test_exit_rates) + "]")
    for point in c.cascade_calibration:
        lines.append(f"cascade_calibration {{ threshold: {_f(point.threshold)} exit_rates: ["
                     + ", ".join(_f(r) for r in point.exit_rates)
                     + f"] accuracy: {_f(point.accuracy)} }}")
    return "\n".join(lines) + "\n"


def write_config(cfg: Union[ModelConfig, Mapping], path: str) -> str:
    """Writes config.pbtxt text to `path` (via a temp file and rename)."""
    text = format_config(cfg)
    _write_text_atomic(path, text)
    return text


def check_config_text(text: str, proto_path: str = _PROTO_PATH) -> Optional[str]:
    """Parses `text` as tandem.v1.ModelConfig with `protoc --encode`.

    Returns None on success or when protoc / the .proto file is unavailable
    (the check is then skipped), else protoc's error message.
    """
    protoc = shutil.which("protoc")
    if protoc is None or not os.path.exists(proto_path):
        return None
    proto_root = os.path.dirname(os.path.dirname(os.path.dirname(proto_path)))
    rel = os.path.relpath(proto_path, proto_root)
    r = subprocess.run([protoc, f"--proto_path={proto_root}",
                        "--encode=tandem.v1.ModelConfig", rel],
                       input=text.encode("utf-8"), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        return r.stderr.decode("utf-8", "replace").strip() or f"protoc exited {r.returncode}"
    return None


# ---------------------------------------------------------------------------
# Progressive module
# ---------------------------------------------------------------------------

class Normalize(nn.Module):
    """(x - mean) / std per channel; put it first in block 0."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ProgressiveNet(nn.Module):
    """The module layout Tandem loads: `blocks` (ModuleList) and `exits`
    (ModuleDict keyed by str(block index)). forward(x) runs every block and
    the final exit head.

    `exits` maps block indices (int, or their decimal strings) to heads. The
    final head, after the last block, may be left out when the last block
    already returns logits [B, classes]: `nn.Identity()` is then added under
    key str(len(blocks) - 1), so the saved module has the same layout as one
    with a hand-written final head. `exits` may thus be empty (no early exit).

    `forward_exits` (eager only, not scripted) returns the logits of every
    exit in ascending block order; use it for joint training and evaluation.
    """

    final_key: str

    def __init__(self, blocks: Sequence[nn.Module], exits: Mapping[int, nn.Module]):
        super().__init__()
        n = len(blocks)
        if n == 0:
            raise ValueError("at least one block is required")
        heads = {}
        for k, head in exits.items():
            if isinstance(k, str) and not (k.isdigit() and str(int(k)) == k):
                raise ValueError(f"exit key {k!r} is not a decimal block index")
            if int(k) in heads:
                raise ValueError(f"exit key {k!r} is given twice")
            heads[int(k)] = head
        bad = sorted(k for k in heads if not 0 <= k < n)
        if bad:
            raise ValueError(f"exit keys {bad} are not block indices in [0, {n})")
        heads.setdefault(n - 1, nn.Identity())
        self.blocks = nn.ModuleList(blocks)
        self.exits = nn.ModuleDict([(str(k), heads[k]) for k in sorted(heads)])
        self.final_key = str(n - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        out = x
        for key, head in self.exits.items():
            if key == self.final_key:
                out = head(x)
        return out

    @torch.jit.ignore
    def exit_blocks(self) -> List[int]:
        return sorted(int(k) for k in self.exits.keys())

    @torch.jit.ignore
    def forward_exits(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.exits:
                outs.append(self.exits[str(i)](x))
        return outs


# ---------------------------------------------------------------------------
# Evaluation and calibration
# ---------------------------------------------------------------------------

@torch.no_grad()
def evaluate_exits(model: nn.Module, inputs: torch.Tensor, batch_size: int = 500
                   ) -> Dict[int, torch.Tensor]:
    """Softmax probabilities of every exit for `inputs` (FP32 [N,...]).

    Works for eager ProgressiveNets and for loaded/scripted packages (it only
    uses `blocks` and `exits`). Returns {block: probs [N, classes]}. The model
    is put in eval mode.
    """
    model.eval()
    blocks = list(model.blocks.children()) if hasattr(model.blocks, "children") else list(model.blocks)
    heads = {int(k): m for k, m in model.exits.named_children()}
    chunks: Dict[int, List[torch.Tensor]] = {k: [] for k in heads}
    for start in range(0, len(inputs), batch_size):
        x = inputs[start:start + batch_size]
        for i, block in enumerate(blocks):
            x = block(x)
            if i in heads:
                chunks[i].append(torch.softmax(heads[i](x), dim=1))
    return {k: torch.cat(v) for k, v in sorted(chunks.items())}


def exit_accuracies(probs: Mapping[int, torch.Tensor], labels: torch.Tensor) -> Dict[int, float]:
    """Accuracy of each exit head alone on all samples."""
    labels = torch.as_tensor(labels)
    return {k: float((p.argmax(1) == labels).float().mean()) for k, p in probs.items()}


@dataclass
class ExitCalibration:
    block: int
    threshold: float
    exit_rate: float         # share of all samples exiting here at `threshold`
    exited_accuracy: float   # accuracy over those samples
    points: List[CalibrationPoint]


CRITERIA = ("absolute", "relative")


def calibrate_cascade(probs: Mapping[int, torch.Tensor], labels: torch.Tensor,
                      accuracy_drop: float = 0.005,
                      thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                      criterion: str = "relative") -> List[ExitCalibration]:
    """Chooses each early exit's threshold in cascade order.

    `probs` is {block: softmax [N, C]} (evaluate_exits) on a validation split;
    the highest block is the final exit. For each early exit (ascending
    block), over the samples not taken by the earlier exits at their chosen
    thresholds, every threshold t is scored: exit_rate = share of ALL samples
    still in flight whose max prob >= t, accuracy = accuracy over those. The
    chosen threshold is the smallest whose exited accuracy meets the target,
    else the largest. A threshold that takes no sample never meets it.

    criterion "relative" (the default): target = the final exit's accuracy
        on the same samples the exit would take - accuracy_drop (a fraction:
        0.005 = 0.5 points). Each exit then costs at most accuracy_drop on
        its samples, so the cascade loses at most about accuracy_drop on the
        split.
    criterion "absolute": target = the final exit's accuracy on the whole
        split - accuracy_drop. The samples an early exit takes are the easy
        ones, on which the final exit does better than its average, so the
        cascade as a whole can lose noticeably more than accuracy_drop.

    The final exit takes every remaining sample (threshold 0).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    labels = torch.as_tensor(labels)
    n = len(labels)
    keys = sorted(probs)
    final_correct = probs[keys[-1]].argmax(1) == labels
    absolute_target = float(final_correct.float().mean()) - accuracy_drop
    ths = sorted(float(t) for t in thresholds)
    remaining = torch.ones(n, dtype=torch.bool)
    result = []
    for k in keys[:-1]:
        conf, pred = probs[k].max(1)
        correct = pred == labels
        points = []
        chosen = None
        for t in ths:
            take = remaining & (conf >= t)
            cnt = int(take.sum())
            acc = float(correct[take].float().mean()) if cnt else 0.0
            points.append(CalibrationPoint(t, cnt / n, acc))
            if criterion == "absolute":
                target = absolute_target
            else:
                target = (float(final_correct[take].float().mean()) if cnt else 1.0) - accuracy_drop
            # Small epsilon: accuracies are ratios of counts, the target a difference of floats.
            if chosen is None and cnt and acc >= target - 1e-9:
                chosen = points[-1]
        if chosen is None:
            chosen = points[-1]
        take = remaining & (conf >= chosen.threshold)
        remaining &= ~take
        result.append(ExitCalibration(k, chosen.threshold, chosen.exit_rate,
                                      chosen.accuracy, points))
    k = keys[-1]
    cnt = int(remaining.sum())
    acc = float(final_correct[remaining].float().mean()) if cnt else 0.0
    result.append(ExitCalibration(k, 0.0, cnt / n, acc, []))
    return result


def cascade_eval(probs: Mapping[int, torch.Tensor], labels: torch.Tensor,
                 thresholds: Mapping[int, float]) -> Tuple[float, List[float]]:
    """Runs the cascade: a sample leaves at the first exit whose max softmax
    probability >= its threshold (the final exit always answers).
    Returns (accuracy, per-exit exit rates in ascending block order)."""
    labels = torch.as_tensor(labels)
    n = len(labels)
    keys = sorted(probs)
    remaining = torch.ones(n, dtype=torch.bool)
    correct = torch.zeros(n, dtype=torch.bool)
    rates = []
    for k in keys:
        conf, pred = probs[k].max(1)
        take = remaining if k == keys[-1] else remaining & (conf >= float(thresholds[k]))
        correct |= take & (pred == labels)
        rates.append(int(take.sum()) / n)
        remaining &= ~take
    return float(correct.float().mean()), rates


# A threshold no max-softmax probability reaches: early exits off.
EXITS_OFF = 1.01


def cascade_calibration(probs: Mapping[int, torch.Tensor], labels: torch.Tensor,
                        thresholds: Sequence[float] = tuple(DEFAULT_THRESHOLDS) + (EXITS_OFF,)
                        ) -> List[CascadePoint]:
    """The cascade with one threshold at every early exit, for each threshold.
    The last point (EXITS_OFF) is the final exit alone."""
    keys = sorted(probs)
    points = []
    for t in thresholds:
        acc, rates = cascade_eval(probs, labels, {k: t for k in keys})
        points.append(CascadePoint(float(t), rates, acc))
    return points


# ---------------------------------------------------------------------------
# Saving and verifying packages
# ---------------------------------------------------------------------------

def _write_text_atomic(path: str, text: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def verify_module(module: torch.jit.ScriptModule, config: Optional[ModelConfig] = None,
                  example: Optional[torch.Tensor] = None, atol: float = 1e-5) -> None:
    """Checks a (loaded) TorchScript module against the package contract.

    - has `blocks` and `exits`; exits keys are decimal block indices in range,
      and include the final one str(N-1);
    - with `config`: num_blocks and the exits' blocks match the module, and
      every head returns [B, len(labels)] logits;
    - running the blocks one by one then exits[str(N-1)] equals forward(x)
      within `atol`.
    Raises ValueError on the first problem.
    """
    names = dict(module.named_children())
    for required in ("blocks", "exits"):
        if required not in names:
            raise ValueError(f"model.pt lacks submodule `{required}`")
    blocks = [m for _, m in names["blocks"].named_children()]
    heads = dict(names["exits"].named_children())
    n = len(blocks)
    if n == 0:
        raise ValueError("`blocks` is empty")
    for key in heads:
        if not key.isdigit() or str(int(key)) != key or int(key) >= n:
            raise ValueError(f"exits key {key!r} is not a block index in [0, {n})")
    if str(n - 1) not in heads:
        raise ValueError(f"no exit after the last block (key {str(n - 1)!r})")
    if config is not None:
        if config.num_blocks != n:
            raise ValueError(f"config num_blocks {config.num_blocks} != {n} blocks in model.pt")
        cfg_blocks = [e.block for e in config.exits]
        if cfg_blocks != sorted(int(k) for k in heads):
            raise ValueError(f"config exits {cfg_blocks} != model.pt exits "
                             f"{sorted(int(k) for k in heads)}")
        if config.platform != PLATFORM:
            raise ValueError(f"platform must be {PLATFORM!r}")
    if example is None:
        if config is None:
            return
        g = torch.Generator().manual_seed(0)
        example = torch.rand([2] + list(config.input.dims), generator=g)
    with torch.no_grad():
        expected = module(example)
        x = example
        for i, block in enumerate(blocks):
            x = block(x)
            if str(i) in heads:
                logits = heads[str(i)](x)
                if logits.dim() != 2 or logits.shape[0] != example.shape[0]:
                    raise ValueError(f"exit {i} returned shape {tuple(logits.shape)}, "
                                     f"expected [B, classes]")
                if config is not None and logits.shape[1] != len(config.labels):
                    raise ValueError(f"exit {i} returns {logits.shape[1]} classes, "
                                     f"config has {len(config.labels)} labels")
        final = heads[str(n - 1)](x)
    if final.shape != expected.shape:
        raise ValueError(f"forward shape {tuple(expected.shape)} != block-by-block "
                         f"{tuple(final.shape)}")
    diff = float((final - expected).abs().max())
    if not diff <= atol:
        raise ValueError(f"forward differs from block-by-block run by {diff} > {atol}")


def save_package(module: nn.Module, config: Union[ModelConfig, Mapping], repo: str,
                 name: str, version: int = 1,
                 extra_files: Optional[Mapping[str, Union[str, bytes]]] = None,
                 example: Optional[torch.Tensor] = None, verify: bool = True) -> str:
    """Scripts `module`, saves it with `config` as <repo>/<name>, and verifies.

    The package is assembled in a hidden temporary directory inside `repo`,
    reloaded with torch.jit.load and checked (verify_module, and the config
    text parsed with protoc when available), then renamed into place,
    replacing any previous <repo>/<name>. A half-written package is never
    visible under its final name. `extra_files` maps paths relative to the
    version directory to contents (e.g. a training report).
    `verify=False` skips the checks (only for deliberately broken test
    packages). `module` may already be a ScriptModule. Returns the package path.
    """
    cfg = _as_config(config)
    if cfg.name != name:
        raise ValueError(f"config name {cfg.name!r} != package name {name!r}")
    module = module.eval()
    scripted = module if isinstance(module, torch.jit.ScriptModule) else torch.jit.script(module)
    os.makedirs(repo, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=repo)
    try:
        vdir = os.path.join(tmp, str(int(version)))
        os.makedirs(vdir)
        model_path = os.path.join(vdir, "model.pt")
        torch.jit.save(scripted, model_path)
        text = format_config(cfg)
        with open(os.path.join(tmp, "config.pbtxt"), "w", encoding="utf-8") as f:
            f.write(text)
        for rel, content in (extra_files or {}).items():
            p = os.path.join(vdir, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb" if isinstance(content, bytes) else "w") as f:
                f.write(content)
        if verify:
            err = check_config_text(text)
            if err:
                raise ValueError(f"config.pbtxt does not parse as tandem.v1.ModelConfig: {err}")
            loaded = torch.jit.load(model_path)
            verify_module(loaded, cfg, example)
        final = os.path.join(repo, name)
        old = None
        if os.path.lexists(final):
            old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=repo)
            os.rename(final, os.path.join(old, name))
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
