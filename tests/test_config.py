"""The config: flags generated from the dataclass, and clear one-line errors."""

import pytest

from pix2pix_tf.config import TrainConfig, UsageError, parse_image_size


def test_defaults_are_the_papers():
    c = TrainConfig(dataset="synthetic")
    assert (c.lambda_l1, c.lr, c.beta1, c.epochs, c.batch_size) == (100.0, 2e-4, 0.5, 50, 16)
    assert c.image_size == (256, 256) and c.resolved_generator_depth == 8 and c.direction == "BtoA"


@pytest.mark.parametrize("text,size", [("256", (256, 256)), ("256x512", (256, 512)), (128, (128, 128))])
def test_parse_image_size(text, size):
    assert parse_image_size(text) == size


def test_depth_follows_size():
    assert TrainConfig(dataset="synthetic", image_size=128).resolved_generator_depth == 7
    assert TrainConfig(dataset="synthetic", image_size="256x512").resolved_generator_depth == 8


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({}, "no data"),
        ({"dataset": "synthetic", "image_size": 96}, "not a multiple of 2\\^6=64"),
        ({"dataset": "synthetic", "image_size": "abc"}, "is not a size"),
        ({"dataset": "synthetic", "epochs": -1}, "--epochs must be >= 0"),
        ({"dataset": "synthetic", "batch_size": 0}, "--batch-size must be >= 1"),
        ({"dataset": "synthetic", "image_size": 16}, "too small"),
    ],
)
def test_bad_values_raise_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**kwargs)


def test_non_defaults_lists_only_changes():
    assert TrainConfig(dataset="synthetic", epochs=3).non_defaults() == {"dataset": "synthetic", "epochs": 3}
