"""Pictures of a run: per-epoch loss curves and input | generated | target sample grids."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: training boxes and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..files import atomic_path  # noqa: E402

G_KEYS = ("g_total", "g_gan", "g_l1")
D_KEYS = ("d_total", "d_real", "d_fake")


def plot_losses(history: list[dict], path: str, prefix: str = "", title: str = "train") -> None:
    """G losses (left) and D losses (right) per epoch from history.json rows; `prefix` is "" or "val_"."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, keys, label in ((axes[0], G_KEYS, "generator"), (axes[1], D_KEYS, "discriminator")):
        for key in keys:
            values = [row.get(prefix + key, np.nan) for row in history]
            ax.plot(epochs, values, marker="o", markersize=3, label=key)
        ax.set_title(f"{title} {label} loss")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")  # g_total is ~100x g_gan through lambda; a log axis shows both
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_image_metrics(history: list[dict], path: str, prefix: str = "val_") -> None:
    """Validation L1 (0-255 pixel units), PSNR (dB) and SSIM per epoch, one panel each."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (key, unit) in zip(axes, (("l1", "mean |G(x) - y|, 0-255"), ("psnr", "dB"), ("ssim", ""))):
        ax.plot(epochs, [row.get(prefix + key, np.nan) for row in history], marker="o", markersize=3)
        ax.set_title(f"{prefix}{key}" + (f" ({unit})" if unit else ""))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def save_sample_grid(inputs: np.ndarray, generated: np.ndarray, targets: np.ndarray, path: str, title: str = "") -> None:
    """One row per image: input | generated | target, all uint8 [N, H, W, C]."""
    rows = len(inputs)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for r in range(rows):
        for c, (name, images) in enumerate((("input", inputs), ("generated", generated), ("target", targets))):
            image = images[r]
            axes[r, c].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
            axes[r, c].axis("off")
            if r == 0:
                axes[r, c].set_title(name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
