"""The Task protocol: everything that differs between tasks, from the files a run reads to the served signatures.

The trainer, the sample grids, the image metrics, the export and predict call these hooks instead of
asking which task runs; tasks/__init__.py is the one place that picks a task (from a config, or from a
generator's channel counts when there is no config).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import tensorflow as tf


class Task(Protocol):
    """One task's hooks. Implementations: tasks.paired.PairedTask, tasks.colorization.ColorizationTask.

    Attributes:
        name: "paired" or "colorization".
        input_channels: channels of x (the generator's input).
        output_channels: channels of y and G(x).
        reads_pairs: its files are side-by-side pairs (checked for their aspect ratio), not single photos.
        synthetic_folder: the folder under OUTPUT_DIR/data/ that --dataset synthetic is drawn into.
        train_example: (path, seed) -> jittered (x, y) in [-1, 1]; None = data.pairs' pair pipeline.
        eval_example: (path) -> resized (x, y) in [-1, 1]; None = data.pairs' pair pipeline.
    """

    name: str
    input_channels: int
    output_channels: int
    reads_pairs: bool
    synthetic_folder: str
    train_example: Callable | None
    eval_example: Callable | None

    def list_files(self, data_dir: str, split: str) -> list:
        """The files of `split` ("train", "val", ...) under `data_dir`."""

    def write_synthetic(self, root: str, count: int, size: int, seed: int) -> str:
        """Draws `count` offline examples into `root` (in the layout `list_files` reads); returns `root`."""

    def split_folder(self, data_dir: str, split: str) -> str:
        """The folder holding `split` of `data_dir`, as export's --eval-dir / --calibration-dir take it."""

    def read_inputs(self, folder: str, direction: str, size: tuple[int, int], count: int) -> np.ndarray:
        """The first `count` generator inputs of a split folder: float32 [N, H, W, Cin] in [-1, 1] at `size`."""

    def input_size(self, folder: str, direction: str) -> tuple[int, int]:
        """(height, width) of a split folder's first generator input as stored: export compares it with the
        training size to choose --resize-mode."""

    def to_rgb(self, x: tf.Tensor, y: tf.Tensor | None = None) -> tf.Tensor:
        """RGB [N, H, W, 3] in [-1, 1] of y given x, or of x alone: what sample grids show and image metrics measure."""

    def translate(
        self, run: Callable, images: tf.Tensor, size: tuple[int, int], resize_mode: str, multiple: int, max_pixels: int
    ) -> tf.Tensor:
        """uint8 images [N, h, w, C] (C = 1..4, any size) -> uint8 outputs [N, h, w, C'] through the network `run`.

        Args:
            run: the network, float [N, H, W, Cin] in [-1, 1] -> [N, H, W, Cout] (Keras, a SavedModel or a LiteRT runner).
            images: what a user sends.
            size: the training size (H, W), at which "squash" runs the network.
            resize_mode: "squash" (at `size`, resized back) or "own" (at the image's size, reflect-padded to `multiple`).
            multiple: 2^depth of the network, for "own".
            max_pixels: "own" refuses images whose padded pixel count is larger.
        """

    def serving_functions(
        self, net: Callable, size: tuple[int, int], resize_mode: str, max_pixels: int
    ) -> dict[str, tuple[Callable, list[tf.TensorSpec]]]:
        """The SavedModel's endpoints, name -> (function, input signature): serving_default (uint8 images),
        translate_encoded (PNG/JPEG bytes -> PNG bytes) and translate_float (the network on float inputs)."""
