"""What `pip install` gives a user: the console commands, the extras and their pip hints, and the test command."""

import concurrent.futures
import os
import re
import shutil
import stat
import subprocess
import sys
import site

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
    # requirements.txt pins everything (CI tests every extra); [dev] installs what requirements-dev.txt does, plus
    # the build backend: the suite builds the package offline (--no-build-isolation), and a fresh venv has no
    # setuptools (Python 3.12+) or one too old to build a wheel without the `wheel` package (3.11's 65).
    build = PYPROJECT["build-system"]["requires"]
    assert _names(_requirements_file("requirements.txt")) == _names(dependencies + _extra("all"))
    assert _names(_requirements_file("requirements-dev.txt")) == _names(dependencies + _extra("dev") + build)
    ranges = {Requirement(r).name.lower(): Requirement(r).specifier for r in dependencies + _extra("dev") + build}
    for line in _requirements_file("requirements-dev.txt"):
        pin = Requirement(line)
        assert ranges[pin.name.lower()].contains(str(pin.specifier).removeprefix("==")), f"{line} is outside pyproject's range"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install .` into a fresh venv (reusing this environment's packages, offline): its bin/ folder."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(os.path.join(REPO, "pix2pix_tf"), source / "pix2pix_tf", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(REPO, name), source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # This environment's packages, listed in a .pth: when it is itself a virtualenv (as README's test command
    # is run), --system-site-packages would show the base interpreter's instead, without requirements-dev.txt's
    # setuptools for the build or TensorFlow for the commands.
    python = str(venv / "bin" / "python")
    theirs = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                            check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(theirs, "tested-environment.pth"), "w") as pth:
        pth.write("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
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


def test_the_installed_package_carries_the_pretrained_files(installed, tmp_path):
    """`pip install .` ships the pretrained generator, its manifest and examples: found by name, hash checked."""
    code = ("from pix2pix_tf import pretrained; m, w = pretrained.read_manifest('cityscapes', 'generator'); "
            "print(w.startswith(pretrained.PRETRAINED_DIR), 'site-packages' in w, len(pretrained.example_files('cityscapes')))")
    env = {**os.environ}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    inside, installed_copy, examples = result.stdout.split()
    assert (inside, installed_copy) == ("True", "True") and int(examples) >= 1


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
    """Stand-ins for id, sudo, apt-get, python and python3 that append their command line to $CALLS.

    `python3 -m venv DIR` makes DIR/bin/python, which logs itself as `venv python`.
    """
    folder.mkdir()
    scripts = {
        "id": f"echo {uid}",
        "sudo": 'echo "sudo $*" >> "$CALLS"; "$@"',
        "apt-get": 'echo "apt-get $* [$DEBIAN_FRONTEND]" >> "$CALLS"',
        "python": 'echo "python $*" >> "$CALLS"; if [ "$2" = pytest ]; then echo "1 passed in 0.01s"; fi',
        "venv-python": 'echo "venv python $*" >> "$CALLS"; if [ "$2" = pytest ]; then echo "1 passed in 0.01s"; fi',
        "python3": 'echo "python3 $*" >> "$CALLS"; mkdir -p "$3/bin"; cp "$(dirname "$0")/venv-python" "$3/bin/python"',
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run_script(command: list[str], env: dict) -> list[str]:
    """Runs a script as CI does (no stdin) and returns the stubs' calls; pytest's closing line must stay last."""
    calls = env["CALLS"]
    open(calls, "w").close()
    result = subprocess.run(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1 passed in 0.01s"
    return open(calls).read().splitlines()


@pytest.mark.parametrize("uid", [0, 1000])
def test_test_command_installs_chromium_then_runs_pytest(tmp_path, uid):
    _stub_bin(tmp_path / "bin", uid)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls.txt"), "HOME": str(tmp_path),
           "PIX2PIX_CHROMIUM": str(tmp_path / "no-chromium"), "CI": "true", "TMPDIR": str(tmp_path)}
    install = "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium"
    apt = (["apt-get update -q []", "apt-get install -y -q chromium [noninteractive]"] if uid == 0 else
           ["sudo apt-get update -q", "apt-get update -q []", f"sudo {install}", "apt-get install -y -q chromium [noninteractive]"])
    pip_then_pytest = ["-m pip install -q -r requirements-dev.txt", "-m pix2pix_tf.site --install-runtime", "-m pytest -q tests"]
    assert _run_script(["bash", "scripts/test.sh"], env) == apt + [f"python {c}" for c in pip_then_pytest]

    # .ci/run: the same command, in a fresh venv whose python it runs, removed afterwards.
    calls = _run_script(["bash", ".ci/run"], env)
    venv = calls[0].removeprefix("python3 -m venv ")
    assert calls[0].startswith("python3 -m venv ") and venv.startswith(str(tmp_path)) and not os.path.exists(venv)
    assert calls[1:] == apt + [f"venv python {c}" for c in pip_then_pytest]

    chromium = tmp_path / "chromium"  # present: nothing is installed
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    calls = _run_script(["bash", "scripts/test.sh"], {**env, "PIX2PIX_CHROMIUM": str(chromium)})
    assert calls == [f"python {c}" for c in pip_then_pytest]
