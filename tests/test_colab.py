"""pix2pix_tf.colab: where the notebook's folders go with Google Drive, and the mount without Colab."""

import os
import sys
import types

import pytest

from pix2pix_tf.apps.colab import drive_root, mount_drive, under_drive
from pix2pix_tf.config import UsageError


def test_drive_root_is_a_folder_inside_my_drive():
    assert drive_root("pix2pix") == "/content/drive/MyDrive/pix2pix"
    assert drive_root("colab/pix2pix/", "/mnt/g") == "/mnt/g/MyDrive/colab/pix2pix"


@pytest.mark.parametrize("folder", ["", "  ", "/content/pix2pix", "~/pix2pix", "../elsewhere", "a/../../b"])
def test_drive_root_refuses_folders_outside_my_drive(folder):
    with pytest.raises(UsageError, match="DRIVE_DIR .*give a folder inside My Drive"):
        drive_root(folder)


def test_under_drive_moves_relative_paths_only():
    paths = ("outputs", "datasets", "/data/cityscapes", "~/.keras/datasets", "runs/a")
    assert under_drive("/d/MyDrive/p", paths) == [
        "/d/MyDrive/p/outputs", "/d/MyDrive/p/datasets", "/data/cityscapes", "~/.keras/datasets", "/d/MyDrive/p/runs/a"
    ]


def test_mount_drive_outside_colab_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # import fails as on any machine but Colab
    with pytest.raises(UsageError, match="DRIVE_DIR needs Google Colab .*set DRIVE_DIR = ''"):
        mount_drive("p2p", str(tmp_path / "mnt"))
    assert not os.path.exists(tmp_path / "mnt")


def test_mount_drive_mounts_and_makes_the_folder(tmp_path, monkeypatch):
    calls = []

    def mount(mountpoint):
        calls.append(mountpoint)
        os.makedirs(os.path.join(mountpoint, "MyDrive"))

    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    root = mount_drive("colab/p2p", str(tmp_path / "mnt"))
    assert calls == [str(tmp_path / "mnt")]
    assert root == str(tmp_path / "mnt" / "MyDrive" / "colab" / "p2p") and os.path.isdir(root)
