"""The README's quick start and "The commands people run most", run in order as a new user pastes them.

Only what must shrink for a test is replaced (sizes, widths, epochs, batch sizes, example counts; the demo's
port). Cityscapes is a tiny generated set where `--dataset cityscapes` looks for its download: HOME points at
a temporary folder whose ~/.keras/datasets/cityscapes holds it, so the commands keep their data flags.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import socketserver
import threading
import urllib.request

import pytest

from docblocks import code_blocks
from pix2pix_tf.data.synthetic import write_synthetic_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS_HEADING = "## The commands people run most"
# What each command of the README runs, called in this process (one TensorFlow import for the whole walk).
ENTRY_POINTS = {
    ("python", "train.py"): "train",
    ("python", "evaluate.py"): "evaluate",
    ("python", "export.py"): "export",
    ("python", "-m", "pix2pix_tf.predict"): "pix2pix_tf.predict",
    ("python", "-m", "pix2pix_tf.demo"): "pix2pix_tf.demo",
}
# flag -> {README value: tiny value}. The two sizes and widths stay different, as the recipes' networks are.
TINY = {
    "--image-size": {"256": "64", "128": "32", "64": "32"},
    "--generator-filters": {"64": "8", "32": "4"},
    "--discriminator-filters": {"64": "8", "32": "4"},
    "--epochs": {"2": "2", "50": "1", "80": "2", "70": "1"},
    "--epochs-decay": {"35": "1"},
    "--batch-size": {"16": "2", "4": "2"},
}
TRAIN_DEFAULTS = {"--image-size": "256", "--generator-filters": "64", "--discriminator-filters": "64"}
ADDED = {  # flags whose defaults cost seconds to minutes here
    "train": ["--synthetic-pairs", "4", "--num-samples", "2"],
    "export": ["--calibration-count", "2", "--eval-count", "2", "--latency-runs", "1"],
    "pix2pix_tf.demo": ["--port", "0"],
}


def readme_walk() -> tuple[list[str], list[str]]:
    """The try-it block (the README's first) and the commands block, and the paths the try-it says to look at."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    blocks = code_blocks(text)
    commands = [line for heading, lines in blocks if heading == COMMANDS_HEADING for line in lines]
    assert blocks and commands, f"README.md: no code block first, or none under {COMMANDS_HEADING!r}"
    after_try_it = text.split("```", 2)[2].strip().split("\n\n")[0]  # the paragraph right after the first block
    return blocks[0][1] + commands, re.findall(r"`(outputs/[^`]+)`", after_try_it)


def shrink(argv: list[str], tool: str) -> list[str]:
    """The command with the flags of TINY replaced, TRAIN_DEFAULTS made explicit first, and ADDED appended."""
    if tool == "train":
        argv = argv + [x for flag, value in TRAIN_DEFAULTS.items() if flag not in argv for x in (flag, value)]
    out = list(argv)
    for i, token in enumerate(argv[:-1]):
        if token in TINY:
            value = argv[i + 1]
            if value not in TINY[token]:
                pytest.fail(f"README.md's {token} {value} has no tiny stand-in: add one to TINY in {__file__}")
            out[i + 1] = TINY[token][value]
    return out + ADDED.get(tool, [])


def run_demo(main, argv: list[str], monkeypatch) -> dict:
    """Starts the demo as the README does, asks it for its page and info, then stops it: what it answered."""
    started, servers = threading.Event(), []
    serve_forever = socketserver.BaseServer.serve_forever

    def recording(server, *args, **kwargs):
        servers.append(server)
        started.set()
        return serve_forever(server, *args, **kwargs)

    monkeypatch.setattr(socketserver.BaseServer, "serve_forever", recording)
    result = {}
    thread = threading.Thread(target=lambda: result.update(code=main(argv)), daemon=True)
    thread.start()
    assert started.wait(120), "the demo did not start serving"
    host, port = servers[0].server_address[:2]
    try:
        for path in ("/", "/api/info", "/api/examples/0.png"):
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=60) as response:
                result[path] = (response.status, response.read())
    finally:
        servers[0].shutdown()
        thread.join(60)
    return result


def test_the_readme_commands_run_in_order(tmp_path, monkeypatch, capsys):
    commands, look_at = readme_walk()
    home = tmp_path / "home"
    write_synthetic_dataset(str(home / ".keras" / "datasets" / "cityscapes"), train=4, val=2, size=64, seed=0)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    ran = []
    for line in commands:
        argv = [os.path.expanduser(token) for token in shlex.split(line, comments=True)]  # as a shell expands ~
        if argv[:2] == ["pip", "install"]:
            assert argv == ["pip", "install", "-r", "requirements.txt"], line  # this environment is that install
            continue
        prefix = next((p for p in ENTRY_POINTS if tuple(argv[: len(p)]) == p), None)
        assert prefix, f"README.md runs {line!r}, which this test does not know how to run"
        tool = ENTRY_POINTS[prefix]
        main = importlib.import_module(tool).main
        args = shrink(argv[len(prefix) :], "train" if tool == "train" else tool)
        if tool == "pix2pix_tf.demo":
            answers = run_demo(main, args, monkeypatch)
            assert answers["code"] == 0 and all(answers[p][0] == 200 for p in ("/", "/api/info", "/api/examples/0.png"))
        else:
            try:
                code = main(args)
            except SystemExit as stop:
                last = capsys.readouterr().err.strip().splitlines()[-1:]
                pytest.fail(f"README.md's {line!r} stopped with exit code {stop.code}: {last}")
            assert code == 0, f"README.md's {line!r} returned {code}"
        ran.append(tool)
    assert ran == ["pix2pix_tf.predict", "train", "train", "train", "train", "evaluate", "export", "pix2pix_tf.predict",
                   "pix2pix_tf.demo"]  # fmt: skip

    # Where the try-it says to look, and what each command promises to leave.
    assert look_at and all(os.path.isfile(path) for path in look_at), look_at
    assert [row["epoch"] for row in json.load(open("outputs/cityscapes/history.json"))] == [1, 2]  # resumed, trained on
    assert "resumed from" in open("logs/pix2pix.log").read()
    assert json.load(open("outputs/cityscapes-1h/report/metrics.json"))["num_images"] == 2
    assert os.path.isfile("exports/cityscapes-1h/1/saved_model.pb")
    assert json.load(open("exports/cityscapes-1h/1/assets.extra/pix2pix.json"))["resize_mode"] == "squash"
    assert sorted(os.listdir("predictions/cityscapes-1h")) == sorted(
        os.path.splitext(name)[0] + ".png" for name in os.listdir(home / ".keras" / "datasets" / "cityscapes" / "val")
    )

    # The old trap: the one-hour recipe pointed at the full recipe's folder names both shapes and both ways out.
    recipe = next(line for line in commands if "--generator-filters 32" in line)
    argv = shlex.split(recipe, comments=True)[2:]
    argv[argv.index("--output-dir") + 1] = "outputs/cityscapes"
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        importlib.import_module("train").main(shrink(argv, "train"))
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert stop.value.code == 2 and len(errors) == 1, errors
    assert "outputs/cityscapes holds a run trained with --generator-filters 8 (now 4)" in errors[0]
    assert "(paired 3->3 channels at 64x64: U-Net depth 6, 8 filters; PatchGAN 8 filters; batch norm)" in errors[0]
    assert "(paired 3->3 channels at 32x32: U-Net depth 5, 4 filters; PatchGAN 4 filters; batch norm)" in errors[0]
    assert "--output-dir NEW_FOLDER" in errors[0] and "--restart to start over in outputs/cityscapes" in errors[0]

    # The second way out: --restart trains the new shape there and keeps the old run aside, its report too.
    assert importlib.import_module("evaluate").main(["--checkpoint-dir", "outputs/cityscapes"]) == 0
    assert importlib.import_module("train").main(shrink(argv, "train") + ["--restart"]) == 0
    (previous,) = os.listdir("outputs/cityscapes/previous")
    kept = set(os.listdir(os.path.join("outputs/cityscapes/previous", previous)))
    assert {"checkpoints", "history.json", "config.json", "report"} <= kept, kept
    assert not os.path.exists("outputs/cityscapes/report")
    assert json.load(open("outputs/cityscapes/config.json"))["generator_filters"] == 4
