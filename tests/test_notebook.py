"""The Colab notebook: runs top to bottom (tiny parameters, synthetic data), installs from its own repository
without touching TensorFlow, stops with a clear message when it does not know that repository, and keeps its run on
(a stand-in for) Google Drive so that a new VM resumes."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import tomllib
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "pix2pix_cityscapes.ipynb")
TINY = {"PIX2PIX_DATASET": "synthetic", "PIX2PIX_EPOCHS": "2", "PIX2PIX_IMAGE_SIZE": "32", "PIX2PIX_BATCH_SIZE": "2",
        "PIX2PIX_STEPS_PER_EPOCH": "2", "PIX2PIX_FILTERS": "4", "PIX2PIX_SYNTHETIC_PAIRS": "6",
        "PIX2PIX_PRETRAINED": ""}  # the pretrained section runs once, in test_notebook_executes_tiny
PIP = '"pip", "install"'  # marks the install cell


def cell_index(nb, text: str) -> int:
    """The first code cell whose source contains `text`."""
    return next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and text in cell.source)


def execute(nb, cwd: str, upto: int | None = None):
    """Runs the first `upto` cells (all by default) in a fresh kernel whose working directory is `cwd`."""
    if upto is not None:
        nb = nbformat.from_dict({**nb, "cells": nb.cells[:upto]})
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": cwd}}).execute()
    return nb


def output_text(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)


def test_notebook_has_colab_badge_and_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "colab.research.google.com" in nb.cells[0].source
    assert "GITHUB_REPO" in nb.cells[0].source and "DRIVE_DIR" in nb.cells[0].source  # what to set, next to the badge
    params = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("GITHUB_REPO", "DRIVE_DIR"):
        assert f'{name} = os.environ.get("PIX2PIX_{name}"' in params[0].source
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")  # committed without outputs


def test_install_cell_keeps_colab_tensorflow():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    install = nb.cells[cell_index(nb, PIP)].source
    # The one pip call: the package alone, no --upgrade / --force-reinstall / pinned TensorFlow / requirements.txt.
    calls = [line.strip() for line in install.splitlines() if "pip" in line and not line.strip().startswith("#")]
    expected = 'subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"pix2pix_tf[litert] @ git+https://github.com/{GITHUB_REPO}"]'
    assert calls == [expected + ", check=True)"]
    # The ranges pip resolves from pyproject accept any TensorFlow 2.21.x, the build Colab ships.
    project = tomllib.loads(Path(ROOT, "pyproject.toml").read_text())["project"]
    for req in map(Requirement, project["dependencies"]):
        if req.name in ("tensorflow", "tensorboard", "tensorflow-serving-api"):
            assert req.specifier.contains("2.21.0") and req.specifier.contains("2.21.7"), req
            assert not req.specifier.contains("2.22.0"), req


def _repo_copy(base) -> str:
    """A git repository holding the package files, standing in for https://github.com/alice/pix2pix_tf."""
    repo = base / "alice" / "pix2pix_tf"
    repo.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), repo)
    shutil.copytree(os.path.join(ROOT, "pix2pix_tf"), repo / "pix2pix_tf", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, *args], cwd=repo, check=True)
    return str(repo)


def test_install_cell_installs_from_github_repo_and_keeps_tensorflow(tmp_path, monkeypatch):
    """Outside a checkout the install cell pip-installs git+https://github.com/GITHUB_REPO; pip resolves it against
    the installed TensorFlow 2.21 and would install nothing but the package (dry run, no index, GitHub redirected to a
    local repository: no network, nothing installed)."""
    _repo_copy(tmp_path / "github")
    report = tmp_path / "pip_report.json"
    env = {"PIX2PIX_GITHUB_REPO": "alice/pix2pix_tf", "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": f"url.file://{tmp_path / 'github'}/.insteadOf", "GIT_CONFIG_VALUE_0": "https://github.com/",
           "PIP_DRY_RUN": "1", "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_REPORT": str(report)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    colab = tmp_path / "content"  # a Colab VM's working directory: no checkout around the notebook
    colab.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.raises(CellExecutionError, match="No module named 'pix2pix_tf'"):  # a dry run installs nothing
        execute(nb, str(colab), upto=cell_index(nb, PIP) + 1)
    installs = json.loads(report.read_text())["install"]
    # (the metadata's spelling of the name depends on the setuptools version: pix2pix-tf or pix2pix_tf)
    assert [(canonicalize_name(i["metadata"]["name"]), i["download_info"]["url"]) for i in installs] == [
        ("pix2pix-tf", "https://github.com/alice/pix2pix_tf")
    ]  # TensorFlow, numpy, ... already satisfy the package's ranges: pip keeps them


@pytest.mark.parametrize("repo", [None, "https://github.com/alice/pix2pix_tf"])
def test_install_cell_without_checkout_or_repo_says_what_to_set(tmp_path, monkeypatch, repo):
    if repo is None:
        monkeypatch.delenv("PIX2PIX_GITHUB_REPO", raising=False)  # the published placeholder OWNER/pix2pix_tf
    else:
        monkeypatch.setenv("PIX2PIX_GITHUB_REPO", repo)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.raises(CellExecutionError) as failure:
        execute(nb, str(tmp_path), upto=cell_index(nb, PIP) + 1)
    expected = "'OWNER/pix2pix_tf'" if repo is None else repr(repo)
    assert f"GITHUB_REPO is {expected}: set it in the parameters cell (or PIX2PIX_GITHUB_REPO)" in str(failure.value)


def test_notebook_executes_tiny(tmp_path, monkeypatch):
    out = tmp_path / "outputs"
    tiny = {**TINY, "PIX2PIX_PRETRAINED": "cityscapes", "PIX2PIX_OUTPUT_DIR": str(out), "PIX2PIX_DATA_ROOT": str(tmp_path / "data"),
            "PIX2PIX_EXPORT_FORMATS": "savedmodel,fp32", "PIX2PIX_EXPORT_DIR": str(tmp_path / "exports")}
    for key, value in tiny.items():
        monkeypatch.setenv(key, value)  # the kernel inherits them; the parameters cell reads them
    monkeypatch.delenv("PIX2PIX_GITHUB_REPO", raising=False)  # a checkout needs none
    monkeypatch.delenv("PIX2PIX_DRIVE_DIR", raising=False)
    # Runs in notebooks/, as in a checkout; raises CellExecutionError on the first failing cell.
    nb = execute(nbformat.read(NOTEBOOK, as_version=4), os.path.dirname(NOTEBOOK))
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 7  # the pretrained grid, the pair, two loss plots, the last sample grid, Keras and TFLite grids
    text = output_text(nb)
    assert f"pix2pix_tf from {os.path.join(ROOT, 'pix2pix_tf')} " in text  # the checkout's own code
    assert f"outputs: {out} | data: {tmp_path / 'data'} | exports: {tmp_path / 'exports'}" in text  # no Drive
    assert "Total params" in text or "Total params" in str(outputs)  # model summaries
    assert "epoch" in text and "img_per_sec" in text  # live progress and the metrics table
    assert sorted(os.listdir(out / "samples")) == ["epoch_001.png", "epoch_002.png"]
    assert os.path.getsize(out / "inference.png") > 0 and os.path.getsize(out / "inference_tflite.png") > 0
    assert "tflite_fp32" in text and "max abs difference vs Keras" in text  # the export table and the LiteRT demo
    assert os.listdir(tmp_path / "exports" / "pix2pix" / "1")  # a SavedModel version in TF Serving's layout
    # The pretrained path, before any training: the shipped generator's grid and its own export.
    assert os.path.getsize(out / "pretrained.png") > 0 and "cityscapes: epoch " in text
    assert os.path.isfile(tmp_path / "exports" / "cityscapes-pretrained" / "1" / "saved_model.pb")


FAKE_DRIVE = '''"""Stands in for Colab's google.colab.drive: "mounting" makes MOUNTPOINT/MyDrive, counting calls."""
import os


def mount(mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
    with open(os.path.join(mountpoint, "mounts.txt"), "a") as f:
        f.write(mountpoint + "\\n")
'''


def test_notebook_on_drive_resumes_on_a_new_vm(tmp_path, monkeypatch):
    """DRIVE_DIR puts outputs on Drive; a second run in a fresh kernel (a new VM) resumes from the Drive checkpoints."""
    fake = tmp_path / "fake_colab" / "google" / "colab"  # `google` stays a namespace package: protobuf's is merged
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "drive.py").write_text(FAKE_DRIVE)
    checkout = tmp_path / "checkout"  # a notebooks/ next to the package, so the install cell needs no network
    (checkout / "notebooks").mkdir(parents=True)
    os.symlink(os.path.join(ROOT, "pix2pix_tf"), checkout / "pix2pix_tf")
    mount = tmp_path / "mnt"
    for key, value in {**TINY, "PIX2PIX_DRIVE_DIR": "colab/p2p", "PIX2PIX_DRIVE_MOUNT": str(mount),
                       "PYTHONPATH": str(tmp_path / "fake_colab")}.items():
        monkeypatch.setenv(key, value)
    for key in ("PIX2PIX_OUTPUT_DIR", "PIX2PIX_DATA_ROOT", "PIX2PIX_EXPORT_DIR"):  # the relative defaults
        monkeypatch.delenv(key, raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    upto = cell_index(nb, "history = train(config)") + 1
    runs = []
    for epochs in ("1", "2"):
        monkeypatch.setenv("PIX2PIX_EPOCHS", epochs)
        runs.append(output_text(execute(nb, str(checkout / "notebooks"), upto)))
    drive = mount / "MyDrive" / "colab" / "p2p"
    assert f"outputs: {drive / 'outputs'} | data: {drive / 'datasets'} | exports: {drive / 'exports'}" in runs[0]
    assert (mount / "mounts.txt").read_text().splitlines() == [str(mount)] * 2
    assert sorted(os.listdir(drive / "outputs" / "samples")) == ["epoch_001.png", "epoch_002.png"]
    assert [row["epoch"] for row in json.loads((drive / "outputs" / "history.json").read_text())] == [1, 2]
    log = (drive / "outputs" / "pix2pix.log").read_text()
    assert "resumed from" in log and "(epoch 1," in log.split("resumed from")[1]
    assert not os.path.exists(checkout / "notebooks" / "outputs")  # nothing written to the VM's disk


def test_notebook_drive_outside_colab_says_so(tmp_path, monkeypatch):
    for key, value in {**TINY, "PIX2PIX_DRIVE_DIR": "p2p", "PIX2PIX_DRIVE_MOUNT": str(tmp_path / "mnt")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # no google.colab here
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.raises(CellExecutionError, match="DRIVE_DIR needs Google Colab"):
        execute(nb, os.path.dirname(NOTEBOOK), upto=cell_index(nb, "mount_drive(") + 1)
    assert not os.path.exists(tmp_path / "mnt")
