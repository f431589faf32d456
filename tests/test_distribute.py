"""tf.distribute: 2 mirrored replicas compute what one device does; a 2-worker cluster trains, writes once, restores."""

import json
import os
import socket
import subprocess
import sys
import types

import pytest
import tensorflow as tf

import train as train_script
from pix2pix_tf.config import TrainConfig, UsageError
from pix2pix_tf.train.checkpointing import make_checkpoint
from pix2pix_tf.train.loop import build_pix2pix
from pix2pix_tf.train.runtime import check_batch_size, check_tf_config, make_strategy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--image-size", "32", "--batch-size", "4", "--generator-filters", "4", "--discriminator-filters", "4"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return env | {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT} | extra


def test_mirrored_two_cpu_replicas_match_one_device(pair_dir, tmp_path):
    report_path = tmp_path / "report.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "tests", "mirrored_run.py"), pair_dir, str(report_path)],
                   env=_env(), check=True, timeout=300, capture_output=True)
    report = json.loads(report_path.read_text())
    default, mirrored = report["default"], report["mirrored"]
    assert (default["replicas"], mirrored["replicas"]) == (1, 2)
    assert default["iterations"] == mirrored["iterations"] == 3
    # Losses averaged over the global batch: same losses and weights up to float32 summation order.
    for name, value in default["losses"].items():
        assert mirrored["losses"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert report["max_weight_diff"] < 1e-5
    # BatchNorm is per replica: each replica normalizes its own 2 images, not the global batch of 4.
    assert report["batchnorm"]["vs_halves"] < 1e-5
    assert report["batchnorm"]["vs_whole_batch"] > 1e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_cluster(argv: list[str], tmp_path, run: str) -> None:
    """train.py as two MultiWorkerMirroredStrategy workers on localhost; worker 0 is the chief."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"{run}-worker{index}.txt", "w")
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *argv], env=_env(TF_CONFIG=tf_config),
                                      stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))
    codes = [proc.wait(timeout=300) for proc in procs]
    assert codes == [0, 0], [(tmp_path / f"{run}-worker{i}.txt").read_text()[-3000:] for i in range(2)]


def test_multi_worker_chief_writes_outputs_and_resumes(pair_dir, tmp_path):
    out = tmp_path / "outputs"
    argv = ["--data-dir", pair_dir, *TINY, "--strategy", "multi-worker", "--output-dir", str(out),
            "--log-file", str(out / "logs" / "pix2pix.log"), "--num-samples", "1", "--steps-per-epoch", "2", "--val-steps", "1"]
    _run_cluster(argv + ["--epochs", "1"], tmp_path, "first")
    written = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, files in os.walk(out) for f in files)
    for path in ("config.json", "history.json", "plots/train_loss.png", "samples/epoch_001.png", "logs/pix2pix.log",
                 "checkpoints/checkpoint", "checkpoints/ckpt-2.index"):  # ckpt-<train steps>
        assert path in written, written
    # The chief's outputs only: worker 1 deleted its temporary checkpoint and wrote no second event file.
    assert not any("worker-1" in path for path in written), written
    assert len([p for p in written if p.startswith("tensorboard/train/")]) == 1, written
    assert "MultiWorkerMirroredStrategy, 2 replicas" in (out / "logs" / "pix2pix.log").read_text()

    config = TrainConfig(data_dir=pair_dir, image_size=32, generator_filters=4, discriminator_filters=4)
    checkpoint = make_checkpoint(build_pix2pix(config))
    checkpoint.restore(str(out / "checkpoints" / "ckpt-2")).assert_existing_objects_matched()
    assert int(checkpoint.epoch) == 1 and int(checkpoint.g_optimizer.iterations) == 2

    _run_cluster(argv + ["--epochs", "2"], tmp_path, "restart")  # every worker restarts: both resume at epoch 1
    for index in range(2):
        assert "resumed from" in (tmp_path / f"restart-worker{index}.txt").read_text()
    assert [row["epoch"] for row in json.loads((out / "history.json").read_text())] == [1, 2]


def test_auto_is_the_default_strategy_without_gpus():
    assert make_strategy("auto") is tf.distribute.get_strategy()


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "needs TF_CONFIG"),
        ("{not json", "not a cluster spec"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}}', "not a cluster spec"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "is not in its cluster"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["c:3"]}, "task": {"type": "worker", "index": 0}}', "only 'chief' and 'worker'"),
        ('{"cluster": {"worker": ["a", "b:2"]}, "task": {"type": "worker", "index": 0}}', "'host:port'"),
    ],
)
def test_bad_tf_config_is_named(text, message):
    with pytest.raises(UsageError, match=message):
        check_tf_config(text)


def test_batch_must_split_evenly_over_replicas():
    check_batch_size(4, types.SimpleNamespace(num_replicas_in_sync=2))
    with pytest.raises(UsageError, match="--batch-size 5 does not split evenly over 2 replicas"):
        check_batch_size(5, types.SimpleNamespace(num_replicas_in_sync=2))


@pytest.mark.parametrize(
    "argv,tf_config,message",
    [
        (["--strategy", "mirored"], None, "invalid choice: 'mirored'"),
        (["--strategy", "multi-worker"], None, "--strategy multi-worker needs TF_CONFIG"),
        (["--strategy", "multi-worker"], '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "is not in its cluster"),
        (["--strategy", "default"], '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}',
         "describes a 2-task cluster but --strategy is default"),
    ],
)
def test_strategy_errors_exit_2_with_one_line(argv, tf_config, message, pair_dir, tmp_path, capsys, monkeypatch):
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(SystemExit) as exc:
        train_script.main(["--data-dir", pair_dir, *argv, "--output-dir", str(tmp_path), "--log-file", str(tmp_path / "x.log")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("name,message", [("gpu", "unknown --strategy 'gpu'"), ("tpu", "--strategy tpu found no TPU")])
def test_strategy_errors_in_library_code(name, message, monkeypatch):
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(UsageError, match=message):
        make_strategy(name)
