"""Tasks: what a run reads and feeds the networks, and how its tensors become RGB pictures."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import tensorflow as tf

from . import colorization
from ..config import TrainConfig
from ..data.pairs import list_images


def paired_to_rgb(x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
    """The input x (or an output/target y) in [-1, 1] as RGB: 3 channels as they are, 1 channel as gray."""
    image = x if y is None else y
    return tf.image.grayscale_to_rgb(image) if image.shape[-1] == 1 else image


def colorization_to_rgb(x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
    """L (x) with ab (y) as RGB in [-1, 1]; without y, the L channel alone (a = b = 0: gray)."""
    ab = tf.zeros_like(tf.concat([x, x], axis=-1)) if y is None else y
    return colorization.model_to_rgb(x, ab)


@dataclasses.dataclass(frozen=True)
class Task:
    """One task's hooks; the trainer, samples, metrics and export call these instead of asking which task runs.

    Attributes:
        name: "paired" or "colorization".
        input_channels: channels of x (the generator's input).
        output_channels: channels of y and G(x).
        list_files: (data_dir, split) -> the files of that split.
        train_example: (path, seed) -> jittered (x, y) in [-1, 1]; None = data.py's pair pipeline.
        eval_example: (path) -> resized (x, y) in [-1, 1]; None = data.py's pair pipeline.
        to_rgb: (x, y=None) -> RGB [N, H, W, 3] in [-1, 1] of y given x, or of x alone: what sample
            grids show and image metrics measure.
    """

    name: str
    input_channels: int
    output_channels: int
    list_files: Callable[[str, str], list[str]]
    train_example: Callable | None
    eval_example: Callable | None
    to_rgb: Callable[..., tf.Tensor]


def make_task(config: TrainConfig) -> Task:
    """The Task a config asks for (--task, --input-channels, --output-channels)."""
    channels = (config.resolved_input_channels, config.resolved_output_channels)
    if config.task == "colorization":
        return Task(
            "colorization",
            *channels,
            list_files=lambda data_dir, split: colorization.list_photos(data_dir, split, config.val_fraction),
            train_example=functools.partial(colorization.train_example, image_size=config.image_size),
            eval_example=functools.partial(colorization.eval_example, image_size=config.image_size),
            to_rgb=colorization_to_rgb,
        )
    return Task("paired", *channels, list_files=list_images, train_example=None, eval_example=None, to_rgb=paired_to_rgb)
