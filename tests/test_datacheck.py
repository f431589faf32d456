"""Bad data: the pre-flight scan names every unusable file; grayscale and RGBA pairs are converted, not rejected."""

import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import train as train_script
from pix2pix_tf.config import UsageError
from pix2pix_tf.data.check import check_split, find_bad_images
from pix2pix_tf.data.pairs import list_images, load_pair
from pix2pix_tf.files import write_json


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    """train/ with 2 good pairs, a grayscale and an RGBA pair, and 4 kinds of bad file."""
    root = tmp_path_factory.mktemp("mixed")
    split = root / "train"
    split.mkdir()
    rng = np.random.default_rng(0)
    pair = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    jpeg = tf.io.encode_jpeg(pair, quality=95).numpy()
    (split / "good1.jpg").write_bytes(jpeg)
    (split / "good2.png").write_bytes(tf.io.encode_png(pair).numpy())
    (split / "gray.png").write_bytes(tf.io.encode_png(pair[..., :1]).numpy())
    rgba = np.concatenate([pair, np.full((32, 64, 1), 7, np.uint8)], axis=-1)
    (split / "rgba.png").write_bytes(tf.io.encode_png(rgba).numpy())
    (split / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (split / "notes.jpg").write_text("not an image")
    (split / "empty.png").write_bytes(b"")
    (split / "single.jpg").write_bytes(tf.io.encode_jpeg(pair[:, :32]).numpy())  # 32x32: one image, no pair
    return str(root)


def _files(root):
    split = os.path.join(root, "train")
    return sorted(os.path.join(split, name) for name in os.listdir(split))


def test_scan_names_each_bad_file_with_its_reason(mixed_dir):
    bad = find_bad_images(_files(mixed_dir), (32, 32))
    names = {os.path.basename(path): reason for path, reason in bad.items()}
    assert set(names) == {"truncated.jpg", "notes.jpg", "empty.png", "single.jpg"}
    assert "cannot be read or decoded" in names["truncated.jpg"]
    assert "32x32 (WxH): not a side-by-side pair" in names["single.jpg"]
    # 2:1 pairs are wrong for 32x64 training, whose pairs are 4:1.
    assert len(find_bad_images([os.path.join(mixed_dir, "train", "good1.jpg")], (32, 64))) == 1


def test_ab_layout_pairs_are_checked_file_by_file(tmp_path):
    image = np.zeros((32, 32, 3), np.uint8)
    for side, names in (("A", ("ok", "small", "broken")), ("B", ("ok", "small", "broken"))):
        (tmp_path / side / "train").mkdir(parents=True)
        for name in names:
            size = 16 if (side, name) == ("B", "small") else 32
            data = b"junk" if (side, name) == ("B", "broken") else tf.io.encode_png(image[:size, :size]).numpy()
            (tmp_path / side / "train" / f"{name}.png").write_bytes(data)
    pairs = list_images(str(tmp_path), "train")
    bad = {os.path.basename(a): reason for (a, _), reason in find_bad_images(pairs, (32, 32)).items()}
    assert set(bad) == {"small.png", "broken.png"}
    assert "differ in size" in bad["small.png"] and bad["broken.png"].endswith(os.path.join("B", "train", "broken.png"))


def test_skip_warns_per_file_and_counts(mixed_dir, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("pix2pix_tf"), "propagate", True)  # train() turns it off; caplog needs it
    with caplog.at_level(logging.WARNING, logger="pix2pix_tf"):
        good = check_split(_files(mixed_dir), (32, 32), "skip", "train")
    assert [os.path.basename(p) for p in good] == ["good1.jpg", "good2.png", "gray.png", "rgba.png"]
    text = caplog.text
    assert all(name in text for name in ("truncated.jpg", "notes.jpg", "empty.png", "single.jpg"))
    assert "skipped 4 of 8 train files" in text


def test_fail_and_all_bad_raise_with_file_names(mixed_dir):
    with pytest.raises(UsageError, match=r"4 of 8 train files are unusable.*--on-bad-image skip") as err:
        check_split(_files(mixed_dir), (32, 32), "fail", "train")
    assert "truncated.jpg" in str(err.value) and "notes.jpg" in str(err.value)
    only_bad = [p for p in _files(mixed_dir) if os.path.basename(p) in ("notes.jpg", "empty.png")]
    with pytest.raises(UsageError, match="no usable file is left"):
        check_split(only_bad, (32, 32), "skip", "train")


def test_grayscale_and_rgba_pairs_load_as_rgb(mixed_dir):
    split = os.path.join(mixed_dir, "train")
    reference, _ = load_pair(tf.constant(os.path.join(split, "good2.png")), "AtoB")
    gray, _ = load_pair(tf.constant(os.path.join(split, "gray.png")), "AtoB")
    rgba, _ = load_pair(tf.constant(os.path.join(split, "rgba.png")), "AtoB")
    assert gray.shape == rgba.shape == (32, 32, 3)
    np.testing.assert_array_equal(gray.numpy(), np.repeat(reference.numpy()[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(rgba.numpy(), reference.numpy())  # alpha dropped, colours untouched


def test_train_py_fails_before_training_on_bad_file(pair_dir, tmp_path, capsys):
    data = tmp_path / "data"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
        for name in os.listdir(os.path.join(pair_dir, split)):
            shutil.copy(os.path.join(pair_dir, split, name), data / split / name)
    (data / "val" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(SystemExit) as exc:
        train_script.main(["--data-dir", str(data), "--image-size", "32", "--on-bad-image", "fail",
                           "--output-dir", str(tmp_path / "out"), "--log-file", str(tmp_path / "x.log")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "broken.jpg cannot be read or decoded" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "out" / "checkpoints")


def test_write_json_on_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "history.json")
    write_json(path, [{"epoch": 1}])

    def dump_then_fail(data, f, **kwargs):
        f.write('[{"epoch": 1}, {"ep')  # half a file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", dump_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write_json(path, [{"epoch": 1}, {"epoch": 2}])
    monkeypatch.undo()
    with open(path) as f:
        assert json.load(f) == [{"epoch": 1}]
    assert os.listdir(tmp_path) == ["history.json"]  # no temp file left behind


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    from pix2pix_tf.files import write_json

    path = tmp_path / "out.json"
    write_json(str(path), {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask  # not mkstemp's owner-only 0600
