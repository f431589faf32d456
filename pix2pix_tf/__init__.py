"""pix2pix_tf: Pix2Pix (Isola et al. 2017) in TensorFlow 2 / Keras 3; docs/ARCHITECTURE.md maps the package.

    from pix2pix_tf import build_generator, build_discriminator, Pix2Pix, TrainConfig, REGISTRY

The names load on first use, so `import pix2pix_tf.config` (every command's flag parsing) stays free of TensorFlow.
"""

from __future__ import annotations

import importlib

# public name -> the module that owns it
_PUBLIC = {
    "build_generator": "pix2pix_tf.core.networks",
    "build_discriminator": "pix2pix_tf.core.networks",
    "Pix2Pix": "pix2pix_tf.core.model",
    "generator_loss": "pix2pix_tf.core.losses",
    "discriminator_loss": "pix2pix_tf.core.losses",
    "TrainConfig": "pix2pix_tf.config",
    "UsageError": "pix2pix_tf.errors",
    "REGISTRY": "pix2pix_tf.data.sources",
    "fetch_dataset": "pix2pix_tf.data.sources",
}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'pix2pix_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
