"""Shared fixtures: tiny generated datasets, so no test needs ../shared or the network."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pair_dir(tmp_path_factory) -> str:
    """A pix2pix-layout folder of 12 train / 4 val synthetic 64x64 pairs (LEFT photo, RIGHT label)."""
    from pix2pix_tf.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(str(tmp_path_factory.mktemp("pairs")), train=12, val=4, size=64, seed=0)


@pytest.fixture(autouse=True)
def _no_op_determinism_leak():
    """`--deterministic` runs enable TF's op determinism for the whole process; undo it after each test.

    Left on, it would change what later tests build: Keras, for one, silently turns XLA off under it.
    """
    yield
    from tensorflow.python.framework import config as tf_config  # the switch's only off button is private

    if tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()
