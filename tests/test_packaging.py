"""What `pip install` gives a user: the console commands, the extras and their pip hints, and the test command."""

import concurrent.futures
import os
import re
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tomllib
from packaging.requirements import Requirement

from pix2pix_tf.export import main as export_main
from pix2pix_tf.predict import main as predict_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("train", "export", "evaluate", "predict", "demo", "site")
with open(os.path.join(REPO, "pyproject.toml"), "rb") as _file:
    PYPROJECT = tomllib.load(_file)
# A flag each tool's --help must list: proof that its own parser answered.
FLAG = {"train": "--dataset", "export": "--calibration-dir", "evaluate": "--fcn-score", "predict": "--backend", "demo": "--examples",
        "site": "--install-runtime"}


def _names(requirements) -> set[str]:
    return {re.sub(r"[-_.]+", "-", Requirement(r).name).lower() for r in requirements}


def _requirements_file(name: str) -> list[str]:
    """The requirement lines of a requirements file, following `-r` includes."""
    lines = []
    with open(os.path.join(REPO, name)) as f:
        text = f.read()
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            lines += _requirements_file(line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def _extra(name: str) -> list[str]:
    """An extra's requirements, with self-references (`pix2pix_tf[litert]`) expanded."""
    result = []
    for text in PYPROJECT["project"]["optional-dependencies"][name]:
        requirement = Requirement(text)
        result += [r for extra in requirement.extras for r in _extra(extra)] if requirement.name == "pix2pix_tf" else [text]
    return result


def test_every_tool_is_a_console_script():
    assert PYPROJECT["project"]["scripts"] == {
        "pix2pix-train": "pix2pix_tf.train.__main__:main",
        "pix2pix-export": "pix2pix_tf.export:main",
        "pix2pix-evaluate": "pix2pix_tf.evaluate.__main__:main",
        "pix2pix-predict": "pix2pix_tf.predict:main",
        "pix2pix-demo": "pix2pix_tf.demo:main",
        "pix2pix-site": "pix2pix_tf.site:main",
    }


def test_extras_and_requirements_files_agree():
    dependencies = PYPROJECT["project"]["dependencies"]
    assert {"ai-edge-litert", "tensorflow-serving-api"}.isdisjoint(_names(dependencies))  # optional now
    assert _names(_extra("litert")) == {"ai-edge-litert"} and _names(_extra("serving")) == {"tensorflow-serving-api"}
    assert _names(_extra("all")) == {"ai-edge-litert", "tensorflow-serving-api"}
    # requirements.txt pins everything (CI tests every extra); [dev] installs what requirements-dev.txt does.
    assert _names(_requirements_file("requirements.txt")) == _names(dependencies + _extra("all"))
    assert _names(_requirements_file("requirements-dev.txt")) == _names(dependencies + _extra("dev"))
    ranges = {Requirement(r).name.lower(): Requirement(r).specifier for r in dependencies + _extra("dev")}
    for line in _requirements_file("requirements-dev.txt"):
        pin = Requirement(line)
        assert ranges[pin.name.lower()].contains(str(pin.specifier).removeprefix("==")), f"{line} is outside pyproject's range"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install .` into a fresh venv (reusing this interpreter's packages, offline): its bin/ folder."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(os.path.join(REPO, "pix2pix_tf"), source / "pix2pix_tf", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(REPO, name), source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
         "--no-build-isolation", "--no-index", str(source)],
        check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    return venv / "bin"


def test_console_scripts_and_python_m_answer_help(installed, tmp_path):
    commands = {f"pix2pix-{tool}": [str(installed / f"pix2pix-{tool}"), "--help"] for tool in TOOLS}
    commands |= {f"python -m pix2pix_tf.{tool}": [str(installed / "python"), "-m", f"pix2pix_tf.{tool}", "--help"] for tool in TOOLS}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)

    def run(argv):  # from a folder without the checkout, so the installed package answers
        return subprocess.run(argv, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:  # all but train import TensorFlow: one per core
        results = dict(zip(commands, pool.map(run, commands.values())))
    for name, result in results.items():
        tool = name.split("-")[-1].split(".")[-1]
        assert result.returncode == 0, f"{name} --help: {result.stderr[-2000:]}"
        assert FLAG[tool] in result.stdout, name
        if tool != "demo":  # the demo names itself pix2pix-demo either way
            assert result.stdout.startswith(f"usage: {name} "), result.stdout[:100]


def _hide(monkeypatch, package: str) -> None:
    """Makes `package` (and its loaded submodules) un-importable, as when it is not installed."""
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
    assert len(lines) == 1
    return lines[0]


@pytest.fixture
def image(tmp_path) -> str:
    path = str(tmp_path / "label.png")
    tf.io.write_file(path, tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)))
    return path


def test_without_litert_the_commands_name_the_extra(monkeypatch, capsys, tmp_path, image):
    _hide(monkeypatch, "ai_edge_litert")
    model = tmp_path / "generator_fp32.tflite"
    model.write_bytes(b"not read: the runtime is missing first")
    with pytest.raises(SystemExit) as exit_info:
        predict_main([image, "--backend", "tflite", "--model", str(model), "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert _error_line(capsys).endswith(
        'running a .tflite model needs ai-edge-litert, which is not installed: pip install "pix2pix_tf[litert]"'
    )
    # export checks before loading anything (a minutes-long conversion must not end in this error) ...
    with pytest.raises(SystemExit) as exit_info:
        export_main(["--checkpoint-dir", str(tmp_path / "no-run" / "checkpoints"), "--formats", "savedmodel,fp16"])
    assert exit_info.value.code == 2
    assert _error_line(capsys).endswith('pip install "pix2pix_tf[litert]", or pass --formats savedmodel')
    # ... and a SavedModel-only export does not need LiteRT at all: it gets as far as the missing run.
    with pytest.raises(SystemExit):
        export_main(["--checkpoint-dir", str(tmp_path / "no-run" / "checkpoints"), "--formats", "savedmodel"])
    assert "config.json not found" in _error_line(capsys)


def test_without_serving_api_grpc_names_the_extra(monkeypatch, capsys, tmp_path, image):
    _hide(monkeypatch, "tensorflow_serving")
    with pytest.raises(SystemExit) as exit_info:
        predict_main([image, "--backend", "serving-grpc", "--server", "127.0.0.1:1", "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert _error_line(capsys).endswith(
        'the TF Serving gRPC client needs tensorflow-serving-api, which is not installed: pip install "pix2pix_tf[serving]"'
    )


def _stub_bin(folder, uid: int) -> None:
    """Stand-ins for id, sudo, apt-get and python that append their command line to $CALLS."""
    folder.mkdir()
    scripts = {
        "id": f"echo {uid}",
        "sudo": 'echo "sudo $*" >> "$CALLS"; "$@"',
        "apt-get": 'echo "apt-get $* [$DEBIAN_FRONTEND]" >> "$CALLS"',
        "python": 'echo "python $*" >> "$CALLS"; if [ "$2" = pytest ]; then echo "1 passed in 0.01s"; fi',
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("uid", [0, 1000])
def test_test_command_installs_chromium_then_runs_pytest(tmp_path, uid):
    _stub_bin(tmp_path / "bin", uid)
    calls = tmp_path / "calls.txt"
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "CALLS": str(calls), "HOME": str(tmp_path),
           "PIX2PIX_CHROMIUM": str(tmp_path / "no-chromium"), "CI": "true"}
    install = "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium"
    apt = (["apt-get update -q []", "apt-get install -y -q chromium [noninteractive]"] if uid == 0 else
           ["sudo apt-get update -q", "apt-get update -q []", f"sudo {install}", "apt-get install -y -q chromium [noninteractive]"])
    pip_then_pytest = ["python -m pip install -q -r requirements-dev.txt", "python -m pix2pix_tf.site --install-runtime",
                       "python -m pytest -q tests"]
    # .ci/run is exactly the README's command; with no stdin, as CI runs it, pytest's closing line still shows.
    for command in (["bash", "scripts/test.sh"], ["bash", ".ci/run"]):
        calls.write_text("")
        result = subprocess.run(command, check=False, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "1 passed in 0.01s"
        assert calls.read_text().splitlines() == apt + pip_then_pytest

    chromium = tmp_path / "chromium"  # present: nothing is installed
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    calls.write_text("")
    subprocess.run(["bash", "scripts/test.sh"], cwd=REPO, env={**env, "PIX2PIX_CHROMIUM": str(chromium)},
                   stdin=subprocess.DEVNULL, capture_output=True, check=True)
    assert calls.read_text().splitlines() == pip_then_pytest
