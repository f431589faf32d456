"""One frozen TrainConfig: the paper's defaults, validation, and the argparse flags generated from it."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import sys
from typing import Any, Sequence

from .data.sources import DEFAULT_DATA_ROOT, REGISTRY
from .errors import UsageError
from .files import expand_path, user_path

MAX_GENERATOR_DEPTH = 8  # the paper's U-Net at 256x256: 8 stride-2 downsamples to 1x1
MIN_IMAGE_SIDE = 32  # the 70x70 PatchGAN needs at least 32 px to give a >= 2x2 patch map
# (input, output) channels of each task: colorization maps CIE L to the two colour channels a, b.
TASK_CHANNELS = {"paired": (3, 3), "colorization": (1, 2)}
PAIRED_CHANNELS = (1, 3)  # what a paired image can be read as: grayscale or RGB
CACHE_MODES = ("auto", "memory", "none")  # --cache values that are not a folder


def parse_image_size(text: str | int | Sequence[int]) -> tuple[int, int]:
    """Parses `256`, `256x512` (height x width) or a pair into `(height, width)`.

    Raises:
        UsageError: the text is not one positive int or HxW.
    """
    if isinstance(text, int):
        return (text, text)
    if not isinstance(text, str):
        height, width = (int(v) for v in text)
        return (height, width)
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) <= 0:
        raise UsageError(f"--image-size {text!r} is not a size: use one int (256) or HEIGHTxWIDTH (256x512)")
    return (values[0], values[-1])


def auto_generator_depth(image_size: tuple[int, int]) -> int:
    """The U-Net depth for a size: 8 at 256 px, one less per halving (7 at 128, as junyanz's unet_128)."""
    return max(1, min(MAX_GENERATOR_DEPTH, int(math.log2(min(image_size)))))


# How a path field is stored (option(path=...)): "absolute" for what other tools read later from
# anywhere (a run's data folders), "home" for `~` expanded only (a relative run folder stays relative,
# so it can be moved).
PATH_KINDS = ("absolute", "home")


def option(default: Any, help: str, choices: Sequence[Any] | None = None, flag: bool = True, path: str = ""):
    """A config field carrying its flag's help and choices; every CLI config dataclass uses it.

    `path` (one of PATH_KINDS) marks a file or folder: `expand_path_fields` expands its `~`.
    """
    assert path in ("", *PATH_KINDS), path
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "flag": flag, "path": path})


def expand_path_fields(config: Any) -> None:
    """Expands `~` in every path field of a frozen config dataclass; each one's `__post_init__` calls it first.

    Done in the config rather than in argparse so that `--flag ~/x`, `--flag=~/x`, a default, a config
    built in Python and a config.json read back all give the same value.
    """
    for f in dataclasses.fields(config):
        if f.metadata.get("path"):
            object.__setattr__(config, f.name, _normalized_path(f, getattr(config, f.name)))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; `train.py`'s flags are generated from these fields."""

    # data
    data_dir: str = option("", "folder in the pix2pix layout (train/, val/, optional test/; each file one side-by-side pair), or A/train/ + B/train/ with matching names", path="absolute")
    dataset: str = option("", "dataset instead of --data-dir: 'synthetic' draws label/photo pairs offline; a public pix2pix set is downloaded (checksummed) into --data-root", ("", "synthetic", *REGISTRY))
    data_root: str = option(DEFAULT_DATA_ROOT, "where --dataset NAME is downloaded and extracted (NAME/ inside)", path="absolute")
    data_source: str = option("folder", "how --dataset NAME is read: the extracted folder, or the TFDS builder 'pix2pix/NAME'", ("folder", "tfds"))
    allow_unverified_download: bool = option(False, "accept a --dataset archive that has no checksum on record (its sha256 is logged)")
    direction: str = option("", "which half is the input: AtoB reads the LEFT half, BtoA the RIGHT; default: the dataset's task, BtoA for folders (Cityscapes label->photo)", ("AtoB", "BtoA"))
    image_size: tuple[int, int] = option((256, 256), "training size: one int (256) or HEIGHTxWIDTH (256x512)")
    task: str = option("paired", "paired: side-by-side pairs; colorization: any folder of photos, CIE L -> ab", tuple(TASK_CHANNELS))
    input_channels: int = option(0, "channels of the input image: 1 (grayscale) or 3 (RGB); 0 = the task's (3 paired, 1 colorization)")
    output_channels: int = option(0, "channels of the generated image: 1 or 3; 0 = the task's (3 paired, 2 colorization)")
    val_fraction: float = option(0.1, "colorization from a folder without train/ + val/: share of the photos held out for val")
    synthetic_pairs: int = option(200, "train pairs drawn for --dataset synthetic (val gets a tenth, at least 4); with --task colorization, photos in all")
    on_bad_image: str = option("skip", "unusable files found by the start-up scan: skip (warn) or fail", ("skip", "fail"))
    # model (the paper's networks)
    generator_filters: int = option(64, "filters of the U-Net's first conv (ngf); later layers use 2x, 4x, 8x")
    discriminator_filters: int = option(64, "filters of the PatchGAN's first conv (ndf)")
    generator_depth: int = option(0, "U-Net stride-2 downsamples; 0 = auto (8 at 256 px, 7 at 128, ...)")
    norm: str = option("batch", "normalization in both nets", ("batch", "instance"))
    # objective and optimizer
    lambda_l1: float = option(100.0, "weight of the L1 term in the generator loss (lambda)")
    lr: float = option(2e-4, "Adam learning rate for both nets")
    beta1: float = option(0.5, "Adam beta_1 for both nets")
    # schedule
    epochs: int = option(50, "epochs to train (a resumed run trains up to this total)")
    epochs_decay: int = option(
        0,
        "the last N of --epochs decay the learning rate linearly to zero, once per epoch (junyanz's 'linear' policy; "
        "--epochs is the total: his --n_epochs 100 --n_epochs_decay 100 is --epochs 200 --epochs-decay 100); "
        "0 = constant rate",
    )
    batch_size: int = option(16, "images per train step")
    steps_per_epoch: int = option(0, "cap on train steps per epoch; 0 = one pass over the train split")
    val_steps: int = option(0, "cap on validation batches per epoch; 0 = the whole val split")
    # outputs
    output_dir: str = option("outputs", "where checkpoints, plots, samples, history.json and TensorBoard logs go", path="home")
    log_file: str = option("logs/pix2pix.log", "log file (appended), besides the console", path="home")
    num_samples: int = option(4, "val images shown in each outputs/samples/epoch_NNN.png")
    keep_checkpoints: int = option(3, "checkpoints kept under OUTPUT_DIR/checkpoints")
    checkpoint_every: int = option(500, "also checkpoint every N train steps (and on SIGTERM/SIGINT); 0 = at epoch ends only")
    restart: bool = option(False, "ignore existing checkpoints and history in OUTPUT_DIR and start at epoch 0")
    # reproducibility
    seed: int = option(42, "seed for weights, shuffling, crops/flips and dropout")
    deterministic: bool = option(False, "bit-reproducible run: deterministic ops and input order (slower)")
    # scale-out (pix2pix_tf/train/runtime.py)
    strategy: str = option(
        "auto",
        "tf.distribute strategy: auto = mirrored with >1 GPU, else default; multi-worker reads TF_CONFIG; "
        "tpu finds the TPU by TPUClusterResolver ($TPU_NAME or the local/Colab TPU)",
        ("auto", "default", "mirrored", "multi-worker", "tpu"),
    )
    # speed (see README "Speed"; benchmarks/train_throughput.py measures them)
    precision: str = option("auto", "compute precision; auto = bf16 on CPUs with AVX512-BF16/AMX and on Ampere+ GPUs, fp16 (loss-scaled) on older GPUs, else fp32", ("auto", "fp32", "bf16", "fp16"))
    jit_compile: str = option("auto", "XLA-compile the train step; auto = on with a GPU, off on CPU (slower there)", ("auto", "on", "off"))
    steps_per_execution: int = option(1, "train steps per compiled call (cuts Python overhead when steps are short, e.g. on GPU)")
    cache: str = option("auto", "decoded train pairs: 'auto' (memory when the split fits in a quarter of RAM, else none), 'memory', 'none', or a folder for an on-disk cache reused across runs", path="absolute")

    def __post_init__(self) -> None:
        expand_path_fields(self)
        object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        if not self.data_dir and not self.dataset:
            raise UsageError(f"no data: pass --data-dir DIR (a folder with train/ and val/) or --dataset NAME (synthetic, {', '.join(REGISTRY)})")
        if self.data_dir and self.dataset:
            raise UsageError("pass either --data-dir or --dataset, not both")
        if self.data_source == "tfds" and self.dataset not in REGISTRY:
            raise UsageError(f"--data-source tfds reads a public dataset: pass --dataset with one of {', '.join(REGISTRY)}")
        if self.dataset not in ("", "synthetic", *REGISTRY):
            raise UsageError(f"unknown --dataset {self.dataset!r}: choose synthetic or one of {', '.join(REGISTRY)}")
        if not self.direction:  # the dataset's own task
            object.__setattr__(self, "direction", self.default_direction)
        if self.direction not in ("AtoB", "BtoA"):
            raise UsageError(f"--direction must be AtoB or BtoA, got {self.direction!r}")
        for name in ("epochs", "steps_per_epoch", "val_steps", "generator_depth", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.epochs_decay <= self.epochs:
            raise UsageError(
                f"--epochs-decay {self.epochs_decay} must be between 0 and --epochs ({self.epochs}): "
                "it counts the last epochs of the total, over which the learning rate decays to zero"
            )
        for name in ("batch_size", "generator_filters", "discriminator_filters", "keep_checkpoints", "synthetic_pairs", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{_flag(name)} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.beta1 < 1 or self.lambda_l1 < 0:
            raise UsageError("need --lr > 0, 0 <= --beta1 < 1 and --lambda-l1 >= 0")
        self._check_task()
        if not self.cache:
            raise UsageError("--cache is empty: use 'auto', 'memory', 'none', or a folder for an on-disk cache")
        if self.num_samples < 0:
            raise UsageError(f"--num-samples must be >= 0, got {self.num_samples}")
        height, width = self.image_size
        if min(height, width) < MIN_IMAGE_SIDE:
            raise UsageError(f"--image-size {height}x{width} is too small: the PatchGAN needs at least {MIN_IMAGE_SIDE} px a side")
        depth = self.resolved_generator_depth
        if depth > MAX_GENERATOR_DEPTH or 2**depth > min(height, width):
            raise UsageError(f"--generator-depth {depth} needs images of at least {2**depth} px a side")
        if height % 2**depth or width % 2**depth:
            raise UsageError(
                f"--image-size {height}x{width} is not a multiple of 2^{depth}={2**depth} (the U-Net has {depth} "
                f"stride-2 downsamples): use a multiple of {2**depth}, or a smaller --generator-depth"
            )

    def _check_task(self) -> None:
        if self.task not in TASK_CHANNELS:
            raise UsageError(f"unknown --task {self.task!r}: choose one of {', '.join(TASK_CHANNELS)}")
        if not 0 < self.val_fraction < 1:
            raise UsageError(f"--val-fraction must be between 0 and 1 (exclusive), got {self.val_fraction}")
        if self.task == "colorization":
            if self.dataset not in ("", "synthetic"):
                raise UsageError(
                    f"--task colorization reads a folder of photos, not the {self.dataset} pairs: "
                    "use --data-dir PHOTOS or --dataset synthetic"
                )
            if self.input_channels not in (0, 1) or self.output_channels not in (0, 2):
                raise UsageError(
                    "--task colorization maps L (1 channel) to ab (2 channels): drop --input-channels/--output-channels "
                    f"or set them to 1 and 2, got {self.input_channels} and {self.output_channels}"
                )
            return
        for name in ("input_channels", "output_channels"):
            if getattr(self, name) not in (0, *PAIRED_CHANNELS):
                raise UsageError(
                    f"--{_flag(name)} {getattr(self, name)}: paired images are read as 1 (grayscale) or 3 (RGB) channels"
                )

    @property
    def resolved_input_channels(self) -> int:
        return self.input_channels or TASK_CHANNELS[self.task][0]

    @property
    def resolved_output_channels(self) -> int:
        return self.output_channels or TASK_CHANNELS[self.task][1]

    @property
    def resolved_generator_depth(self) -> int:
        return self.generator_depth or auto_generator_depth(self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_defaults(self) -> dict[str, Any]:
        """Fields whose values differ from the defaults, for the start-of-run log line."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != _normalized_default(f)
            and not (f.name == "direction" and self.direction == self.default_direction)
        }

    @property
    def default_direction(self) -> str:
        """What --direction resolves to when not given: the dataset's own task, BtoA for folders."""
        return REGISTRY[self.dataset].direction if self.dataset in REGISTRY else "BtoA"


def _normalized_path(field: dataclasses.Field, value: str) -> str:
    if field.name == "cache" and value in CACHE_MODES:  # a mode, not a folder
        return value
    return expand_path(value) if field.metadata["path"] == "absolute" else user_path(value)


def _normalized_default(field: dataclasses.Field) -> Any:
    """A field's default as __post_init__ stores it, so that non_defaults compares like with like."""
    if field.name == "image_size":
        return parse_image_size(field.default)
    if field.metadata.get("path"):
        return _normalized_path(field, field.default)
    return field.default


def command_line(program: str, config: Any) -> str:
    """`program` with the flags that give `config`'s fields their values where they differ from the defaults."""
    words = [program]
    # TrainConfig.non_defaults also leaves out a direction that is the task's own default.
    changed = config.non_defaults() if hasattr(config, "non_defaults") else {
        field.name: getattr(config, field.name) for field in dataclasses.fields(config)
        if getattr(config, field.name) != _normalized_default(field)
    }  # fmt: skip
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not field.metadata.get("flag", True) or field.name not in changed:
            continue
        flag = "--" + _flag(field.name)
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + _flag(field.name))
        elif field.name == "image_size":
            words += [flag, str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"]
        else:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def prog_name(module: str) -> str:
    """The program name for usage and error lines: `python -m MODULE` when run that way, else the command's name.

    argparse would show `__main__.py` (or `export.py`) for `python -m`, and the console scripts
    (`pix2pix-train`) and top-level wrappers (`train.py`) name themselves correctly already.
    """
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script.startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep):
        return f"python -m {module}"
    return os.path.basename(script) or module


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type = TrainConfig) -> None:
    """Adds one `--flag` per config field, with its help, choices and default."""
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("flag", True):
            continue
        help_text = f.metadata["help"] + " (default: %(default)s)"
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": help_text}
        if f.type in ("bool", bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.name == "image_size":
            kwargs.update(type=str, metavar="SIZE", default="x".join(map(str, f.default)))
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}.get(f.type, type(f.default))
            if f.metadata.get("choices"):
                kwargs["choices"] = [c for c in f.metadata["choices"] if c != ""] or None
        parser.add_argument("--" + _flag(f.name), **kwargs)


def config_from_args(args: argparse.Namespace, config_cls: type = TrainConfig) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: v for k, v in vars(args).items() if k in names})
