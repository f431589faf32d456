"""Tasks: what a run reads and feeds the networks, how its tensors become pictures, and how it is served.

This is the one place that decides which task is at hand: `make_task` from a run's config, `task_for_channels`
or `task_for` from a generator alone (a .keras file, a .tflite model), where a 1 -> 2 channel network is an L -> ab colorizer.
"""

from __future__ import annotations

from ..config import TrainConfig
from .base import Task
from .colorization import ColorizationTask
from .paired import PairedTask

__all__ = ["ColorizationTask", "PairedTask", "Task", "make_task", "task_for", "task_for_channels"]


def make_task(config: TrainConfig) -> Task:
    """The Task a config asks for (--task, --input-channels, --output-channels)."""
    if config.task == "colorization":
        return ColorizationTask(image_size=config.image_size, val_fraction=config.val_fraction)
    return PairedTask(config.resolved_input_channels, config.resolved_output_channels)


def task_for_channels(input_channels: int, output_channels: int) -> Task:
    """The Task of a network known only by its channels: 1 -> 2 is a colorizer (paired images have 1 or 3)."""
    if (input_channels, output_channels) == (ColorizationTask.input_channels, ColorizationTask.output_channels):
        return ColorizationTask()
    return PairedTask(input_channels, output_channels)


def task_for(generator, config: TrainConfig | None = None) -> Task:
    """The Task of a trained generator: its run's (`config`), else the one its channel counts imply."""
    if config is not None:
        return make_task(config)
    return task_for_channels(generator.input_shape[-1], generator.output_shape[-1])
