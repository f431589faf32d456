"""The config: flags generated from the dataclass, and clear one-line errors."""

import json
import os

import pytest

from pix2pix_tf.config import TrainConfig, UsageError, parse_image_size
from pix2pix_tf.run import read_run_config


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


def test_paths_are_stored_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    c = TrainConfig(data_dir="data/city", cache="~/cache", output_dir="~/runs/a", log_file="logs/x.log")
    # Data folders absolute (read later from anywhere); the run's own outputs keep a relative path relative.
    assert (c.data_dir, c.cache) == (str(tmp_path / "data" / "city"), str(tmp_path / "home" / "cache"))
    assert (c.output_dir, c.log_file) == (str(tmp_path / "home" / "runs" / "a"), "logs/x.log")
    assert TrainConfig(dataset="facades").data_root == str(tmp_path / "home" / ".keras" / "datasets")
    assert TrainConfig(dataset="synthetic", cache="memory").cache == "memory"  # a mode, not a folder
    assert "data_root" not in TrainConfig(dataset="facades").non_defaults()  # the default, expanded, is still the default


def test_an_old_config_json_with_tilde_reads_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    old = TrainConfig(dataset="facades").to_dict() | {"data_root": "~/.keras/datasets", "from_a_newer_version": 1}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    config = read_run_config(str(path))
    assert config.data_root == os.path.join(str(tmp_path), ".keras", "datasets") and config.dataset == "facades"
