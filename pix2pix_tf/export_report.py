"""export_report.json: per exported format, its size, one-image latency on this machine and fidelity vs Keras."""

from __future__ import annotations

import datetime
import os
import platform
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from .data import list_images, load_pair, resize_pair

PEAK = 2.0  # the generator's output range [-1, 1]: PSNR here equals PSNR of the uint8 images


def load_inputs(split_dir: str, direction: str, image_size: tuple[int, int], count: int) -> np.ndarray:
    """The first `count` input halves of the pair files in `split_dir`, as float32 [-1, 1] at `image_size`.

    Raises:
        UsageError: the folder is missing or holds no images.
    """
    files = list_images(os.path.dirname(os.path.abspath(split_dir)), os.path.basename(os.path.abspath(split_dir)))
    inputs = [resize_pair(*load_pair(path, direction), image_size)[0].numpy() for path in files[:count]]
    return np.stack(inputs).astype(np.float32)


def max_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def psnr_db(a: np.ndarray, b: np.ndarray) -> float | None:
    """PSNR over the whole batch for [-1, 1] images; None when they are identical (infinite PSNR)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return None if mse == 0 else 10 * np.log10(PEAK**2 / mse)


def mean_latency_ms(fn: Callable[[np.ndarray], object], image: np.ndarray, runs: int, warmup: int = 2) -> float:
    """Mean wall time of `fn` on one [1, H, W, 3] image, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn(image)
    start = time.perf_counter()
    for _ in range(runs):
        fn(image)
    return (time.perf_counter() - start) / max(runs, 1) * 1000


def size_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def measure(
    runners: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]],
    generator: keras.Model,
    inputs: np.ndarray,
    latency_runs: int,
) -> dict:
    """Report entries for the Keras generator and each `runners` name -> (artifact path, float fn)."""
    reference = generator(inputs, training=False).numpy()
    one = inputs[:1]
    formats = {
        "keras": {
            "params": int(generator.count_params()),
            "latency_ms": mean_latency_ms(lambda x: generator(x, training=False), one, latency_runs),
        }
    }
    for name, (path, fn) in runners.items():
        outputs = np.asarray(fn(inputs))
        if not np.all(np.isfinite(outputs)):
            raise RuntimeError(f"{name} ({path}) produced NaN/inf outputs: the export is broken")
        formats[name] = {
            "path": path,
            "size_bytes": size_bytes(path),
            "latency_ms": mean_latency_ms(fn, one, latency_runs),
            "max_abs_error": max_abs_error(outputs, reference),
            "psnr_db": psnr_db(outputs, reference),
        }
    return formats


def environment() -> dict:
    """Where the figures were measured: they only compare within one report."""
    return {
        "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
