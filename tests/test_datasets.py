"""Public datasets: checksummed download from a local server, safe extraction, the A/ B/ layout, the TFDS builder."""

import dataclasses
import errno
import functools
import hashlib
import http.server
import io
import logging
import os
import tarfile
import threading
import urllib.error

import numpy as np
import pytest
import tensorflow as tf
from keras.src.utils import file_utils

import train as train_script
from pix2pix_tf.config import TrainConfig, UsageError
from pix2pix_tf.data import sources as datasets
from pix2pix_tf.data.pairs import list_images, load_pair, make_eval_dataset
from pix2pix_tf.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> str:
    """facades.tar.gz in the Berkeley layout (facades/train, facades/val) holding 6 + 4 synthetic 32x64 pairs."""
    root = tmp_path_factory.mktemp("archive")
    write_synthetic_dataset(str(root / "facades"), train=6, val=4, size=32, seed=3)
    path = str(root / "facades.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(str(root / "facades"), arcname="facades")
    return path


@pytest.fixture
def server(archive):
    """An HTTP server on 127.0.0.1 serving the archive's folder; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=os.path.dirname(archive))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _with_checksum(monkeypatch, sha256=None, md5=None):
    spec = dataclasses.replace(datasets.REGISTRY["facades"], sha256=sha256, md5=md5)
    monkeypatch.setitem(datasets.REGISTRY, "facades", spec)


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_registry_entries_are_complete():
    assert set(datasets.REGISTRY) == {"cityscapes", "facades", "maps", "edges2shoes", "edges2handbags", "night2day"}
    for spec in datasets.REGISTRY.values():
        assert spec.url == f"http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{spec.name}.tar.gz"
        assert {"train", "val"} <= set(spec.splits) and spec.direction in ("AtoB", "BtoA")
        assert spec.checksum is None or len(spec.checksum) in (32, 64)
    assert datasets.REGISTRY["cityscapes"].direction == datasets.REGISTRY["facades"].direction == "BtoA"  # label -> photo
    assert TrainConfig(dataset="edges2shoes").direction == "AtoB"  # --direction defaults to the dataset's task
    assert TrainConfig(dataset="edges2shoes", direction="BtoA").direction == "BtoA"


def test_download_verifies_extracts_and_then_works_offline(archive, server, monkeypatch, tmp_path):
    _with_checksum(monkeypatch, sha256=_sha256(archive))
    root = str(tmp_path / "root")
    folder = datasets.fetch_dataset("facades", root, url=f"{server}/facades.tar.gz")
    assert folder == os.path.join(root, "facades")
    assert len(list_images(folder, "train")) == 6 and len(list_images(folder, "val")) == 4
    assert os.listdir(root) == ["facades"]  # archive removed after extraction, no temp folders left
    # Offline now (a dead URL): the extracted folder is reused without any download.
    assert datasets.fetch_dataset("facades", root, url="http://127.0.0.1:1/facades.tar.gz") == folder


def test_md5_on_record_is_checked_too(archive, server, monkeypatch, tmp_path):
    _with_checksum(monkeypatch, md5=hashlib.md5(open(archive, "rb").read()).hexdigest())
    assert datasets.is_prepared(datasets.fetch_dataset("facades", str(tmp_path), url=f"{server}/facades.tar.gz"))


def test_checksum_mismatch_is_refused_and_leaves_nothing(server, monkeypatch, tmp_path):
    _with_checksum(monkeypatch, sha256="0" * 64)
    with pytest.raises(UsageError, match="failed its checksum.*removed"):
        datasets.fetch_dataset("facades", str(tmp_path), url=f"{server}/facades.tar.gz")
    assert os.listdir(tmp_path) == []


def test_unverified_download_needs_the_flag(archive, server, monkeypatch, tmp_path, caplog):
    _with_checksum(monkeypatch)  # no checksum on record
    with pytest.raises(UsageError, match="--allow-unverified-download"):
        datasets.fetch_dataset("facades", str(tmp_path), url=f"{server}/facades.tar.gz")
    assert os.listdir(tmp_path) == []  # refused before downloading anything
    # train() turns propagation off for its own console/file handlers; caplog listens at the root.
    monkeypatch.setattr(logging.getLogger("pix2pix_tf"), "propagate", True)
    with caplog.at_level("WARNING", logger="pix2pix_tf"):
        datasets.fetch_dataset("facades", str(tmp_path), allow_unverified=True, url=f"{server}/facades.tar.gz")
    assert _sha256(archive) in caplog.text  # the hash to pin is logged


def test_offline_failure_names_data_dir(monkeypatch, tmp_path):
    _with_checksum(monkeypatch, sha256="0" * 64)
    with pytest.raises(UsageError, match=r"could not download .*Offline\? .*--data-dir") as exc:
        datasets.fetch_dataset("facades", str(tmp_path), url="http://127.0.0.1:1/facades.tar.gz")
    assert os.listdir(tmp_path) == []
    # The cause is kept: get_file's bare Exception, raised while handling urllib's connection error.
    assert isinstance(exc.value.__cause__.__context__, urllib.error.URLError)


def test_download_errors_that_are_not_the_network_do_not_say_offline(server, monkeypatch, tmp_path):
    _with_checksum(monkeypatch, sha256="0" * 64)
    answered = r"missing.tar.gz: the server answered HTTP 404 \(File not found\)\. Put"
    with pytest.raises(UsageError, match=answered) as exc:  # online, at a wrong address
        datasets.fetch_dataset("facades", str(tmp_path), url=f"{server}/missing.tar.gz")
    assert "Offline" not in str(exc.value) and isinstance(exc.value.__cause__.__context__, urllib.error.HTTPError)

    def disk_full(url, filename, reporthook=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_utils, "urlretrieve", disk_full)  # what get_file calls to fetch and write the file
    with pytest.raises(UsageError, match=r"\(OSError: \[Errno 28\] No space left on device\)\. Put") as exc:
        datasets.fetch_dataset("facades", str(tmp_path), url=f"{server}/facades.tar.gz")
    assert "Offline" not in str(exc.value) and exc.value.__cause__.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


def test_cli_refuses_an_unverifiable_download_with_exit_2(capsys, tmp_path):
    # night2day has no checksum on record: refused before any network access.
    with pytest.raises(SystemExit) as exc:
        train_script.main(["--dataset", "night2day", "--data-root", str(tmp_path / "root"),
                           "--output-dir", str(tmp_path), "--log-file", str(tmp_path / "x.log")])
    assert exc.value.code == 2
    assert "--allow-unverified-download" in capsys.readouterr().err
    assert not (tmp_path / "root" / "night2day.tar.gz").exists()


def _tar_with(path, name, data=b"x", link_to=None):
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        if link_to:
            info.type, info.linkname = tarfile.SYMTYPE, link_to
        else:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if not link_to else None)


@pytest.mark.parametrize("member,link_to", [("../escaped.txt", None), ("facades/link", "../../escaped.txt")])
def test_traversal_member_is_refused(member, link_to, tmp_path):
    bad = str(tmp_path / "bad.tar.gz")
    _tar_with(bad, member, link_to=link_to)
    target = tmp_path / "root" / "facades"
    with pytest.raises(UsageError, match="refusing to extract.*unsafe"):
        datasets.extract_archive(bad, str(target))
    assert not (tmp_path / "root" / "escaped.txt").exists() and not target.exists()
    assert os.listdir(tmp_path / "root") == []  # the temporary extraction folder is gone too


def test_archive_without_splits_is_refused(tmp_path):
    odd = str(tmp_path / "odd.tar.gz")
    _tar_with(odd, "readme.txt")
    with pytest.raises(UsageError, match="no train/ and val/"):
        datasets.extract_archive(odd, str(tmp_path / "out"))


def _write_png(path, value, shape=(32, 32, 3)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(np.full(shape, value, np.uint8)))


@pytest.mark.parametrize("nesting", [("A", "train"), ("train", "A")])
def test_a_b_folder_layout(tmp_path, nesting):
    for i in range(3):
        for side, value in (("A", 10 + i), ("B", 200 + i)):
            parts = [p.replace("A", side) for p in nesting]
            _write_png(str(tmp_path.joinpath(*parts, f"{i}.png")), value)
    pairs = list_images(str(tmp_path), "train")
    assert [os.path.basename(a) for a, _ in pairs] == ["0.png", "1.png", "2.png"]
    x, y = load_pair(tf.constant(pairs[1]), "AtoB")
    assert int(tf.reduce_max(x)) == int(tf.reduce_min(x)) == 11 and int(tf.reduce_min(y)) == 201
    x, y = load_pair(tf.constant(pairs[1]), "BtoA")
    assert int(tf.reduce_min(x)) == 201 and int(tf.reduce_min(y)) == 11
    config = TrainConfig(data_dir=str(tmp_path), image_size=32, direction="AtoB")
    inputs, targets = next(iter(make_eval_dataset(pairs, config, batch_size=3)))
    assert inputs.shape == targets.shape == (3, 32, 32, 3)


def test_a_b_layout_errors(tmp_path):
    _write_png(str(tmp_path / "A" / "train" / "1.png"), 1)
    _write_png(str(tmp_path / "B" / "train" / "2.png"), 2)
    with pytest.raises(UsageError, match="same file names.*'1.png'"):
        list_images(str(tmp_path), "train")
    _write_png(str(tmp_path / "A" / "train" / "2.png"), 1, shape=(16, 16, 3))
    _write_png(str(tmp_path / "B" / "train" / "1.png"), 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in size"):
        load_pair(tf.constant(list_images(str(tmp_path), "train")[1]), "AtoB")


def test_tfds_builder_from_manual_dir_yields_the_right_halves(archive, tmp_path):
    import pix2pix_tf.data.tfds  # noqa: F401 - registers "pix2pix"
    import tensorflow_datasets as tfds

    manual = os.path.dirname(archive)  # holds facades/ (extracted) next to facades.tar.gz
    ds, info = tfds.load(
        "pix2pix/facades", split="val", data_dir=str(tmp_path / "tfds"), with_info=True,
        download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(manual_dir=manual)},
    )
    assert info.splits["train"].num_examples == 6 and info.splits["val"].num_examples == 4
    assert set(info.splits) == {"train", "val"}  # the fixture has no test/ split
    examples = sorted(tfds.as_numpy(ds), key=lambda ex: ex["file_name"])
    files = list_images(os.path.join(manual, "facades"), "val")
    assert [ex["file_name"].decode() for ex in examples] == [os.path.basename(f) for f in files]
    for ex, path in zip(examples, files):
        image = tf.io.decode_jpeg(tf.io.read_file(path)).numpy()
        # facades is label (RIGHT) -> photo (LEFT): bit-exact halves, PNG-stored.
        np.testing.assert_array_equal(ex["input_image"], image[:, 32:])
        np.testing.assert_array_equal(ex["target_image"], image[:, :32])


@pytest.mark.parametrize("direction,left_is_input", [("AtoB", True), ("BtoA", False)])
def test_tfds_source_follows_the_configured_direction(archive, direction, left_is_input):
    from pix2pix_tf.data.tfds import load_pix2pix_split

    root = os.path.dirname(archive)  # holds the extracted facades/, so nothing is downloaded
    config = TrainConfig(dataset="facades", data_source="tfds", data_root=root, direction=direction)
    elements = list(load_pix2pix_split(config, "val"))
    assert len(elements) == 4
    element = elements[0]  # TFDS stores examples in its own (hashed) order: find the file by name
    x, y = load_pair(element, config.direction)
    path = os.path.join(root, "facades", "val", element["file_name"].numpy().decode())
    first = tf.io.decode_jpeg(tf.io.read_file(path)).numpy()
    left, right = first[:, :32], first[:, 32:]
    np.testing.assert_array_equal(x.numpy(), left if left_is_input else right)
    np.testing.assert_array_equal(y.numpy(), right if left_is_input else left)


def test_train_py_reads_the_tfds_source(archive, server, monkeypatch, tmp_path):
    _with_checksum(monkeypatch, sha256=_sha256(archive))
    monkeypatch.setattr(datasets, "BASE_URL", server)  # spec.url now points at the local server
    out = str(tmp_path / "out")
    assert train_script.main([
        "--dataset", "facades", "--data-source", "tfds", "--data-root", str(tmp_path / "root"),
        "--image-size", "32", "--batch-size", "2", "--generator-filters", "4", "--discriminator-filters", "4",
        "--epochs", "1", "--steps-per-epoch", "2", "--num-samples", "2", "--output-dir", out,
        "--log-file", str(tmp_path / "log.txt"),
    ]) == 0
    assert os.path.exists(os.path.join(out, "samples", "epoch_001.png"))
    assert os.path.isdir(tmp_path / "root" / "tfds" / "pix2pix" / "facades")
    assert "6 train / 4 val pairs" in open(tmp_path / "log.txt").read()


def test_tfds_source_needs_a_public_dataset():
    with pytest.raises(UsageError, match="--data-source tfds"):
        TrainConfig(dataset="synthetic", data_source="tfds")
