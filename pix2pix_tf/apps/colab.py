"""Google Drive for the Colab notebook: data, checkpoints and exports that outlive the VM."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import UsageError

MOUNT_POINT = "/content/drive"  # Colab's usual mount point; Drive's files appear under MOUNT_POINT/MyDrive


def drive_root(folder: str, mount_point: str = MOUNT_POINT) -> str:
    """The absolute path of My Drive/`folder` once Drive is mounted at `mount_point`.

    Raises:
        UsageError: `folder` is absolute or climbs out of My Drive with "..".
    """
    parts = folder.replace("\\", "/").split("/")
    if not folder.strip() or os.path.isabs(folder) or folder.startswith("~") or ".." in parts:
        raise UsageError(f"DRIVE_DIR {folder!r}: give a folder inside My Drive, e.g. 'pix2pix' or 'colab/pix2pix'")
    return os.path.join(mount_point, "MyDrive", os.path.normpath(folder))


def under_drive(root: str, paths: Sequence[str]) -> list[str]:
    """`paths` with each relative one placed under `root`; absolute and ~ paths are the user's choice and stay."""
    return [path if os.path.isabs(os.path.expanduser(path)) else os.path.join(root, path) for path in paths]


def mount_drive(folder: str, mount_point: str = MOUNT_POINT) -> str:
    """Mounts Google Drive (Colab asks for access once per VM) and returns My Drive/`folder`, created if missing.

    Re-running the notebook on a fresh VM with the same `folder` finds the checkpoints written there,
    so training resumes instead of starting over.

    Raises:
        UsageError: not running in Colab (`google.colab` cannot be imported), or a bad `folder`.
    """
    root = drive_root(folder, mount_point)
    try:
        from google.colab import drive  # only exists on Colab VMs
    except ImportError:
        raise UsageError("DRIVE_DIR needs Google Colab (google.colab is not importable here): set DRIVE_DIR = '' "
                         "and choose OUTPUT_DIR / DATA_ROOT / EXPORT_DIR on this machine instead") from None
    drive.mount(mount_point)  # prints "already mounted" on a re-run, which is harmless
    os.makedirs(root, exist_ok=True)
    return root
