"""The public pix2pix paired datasets: a registry, a checksummed download and a safe extraction.

    from pix2pix_tf.data.sources import fetch_dataset
    data_dir = fetch_dataset("facades")  # ~/.keras/datasets/facades/{train,val,test}/

Every archive is the Berkeley pix2pix release: one JPEG per pair, the two images side by side
(A = LEFT half, B = RIGHT half). Pure Python at import time, so config.py can read the registry
before TensorFlow loads; `resolve_data_dir` also draws the synthetic sets (importing TensorFlow then).
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error

from ..errors import UsageError
from ..files import expand_path, sha256

logger = logging.getLogger("pix2pix_tf")

BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"  # junyanz/pytorch-CycleGAN-and-pix2pix download script
DEFAULT_DATA_ROOT = os.path.join("~", ".keras", "datasets")  # where keras.utils.get_file caches by default


@dataclasses.dataclass(frozen=True)
class PairedDataset:
    """One public pix2pix dataset: where it lives, how to check it, what its halves are."""

    name: str
    splits: dict[str, int]  # split folder -> pairs in the archive
    half_size: tuple[int, int]  # (height, width) of ONE half; files are height x 2*width
    a: str  # what the LEFT half shows
    b: str  # what the RIGHT half shows
    direction: str  # the paper's task: AtoB maps the left half to the right one
    download_size: str  # as listed on the server, to warn before a long download
    sha256: str | None = None  # no SHA-256 of these archives is published anywhere we could find
    md5: str | None = None  # see _THIRD_PARTY_MD5

    @property
    def url(self) -> str:
        return f"{BASE_URL}/{self.name}.tar.gz"

    @property
    def archive_name(self) -> str:
        return f"{self.name}.tar.gz"

    @property
    def checksum(self) -> str | None:
        """The hash keras.utils.get_file verifies (it tells SHA-256 from MD5 by length)."""
        return self.sha256 or self.md5

    def describe(self) -> str:
        splits = ", ".join(f"{n} {k}" for k, n in self.splits.items())
        return f"{self.name}: A (left) = {self.a}, B (right) = {self.b}; default {self.direction}; {splits}"


# MD5s published by a third-party pix2pix loader (a `_data_source` table of
# efrosgans.eecs.berkeley.edu archives found by code search; its repository was not identified). The
# archives themselves could not be fetched to confirm them, so they are used as a corruption check
# only. Its night2day entry is left out: a missing comma in that table glued the hash to the next
# string, so that value was never exercised.
_THIRD_PARTY_MD5 = {
    "cityscapes": "32569df708076e427e9cd02abbca7748",
    "edges2handbags": "815592f22fa7f7534a286a25bb73bf03",
    "edges2shoes": "71da478b54fedde126e234a2a050bc15",
    "facades": "e2e25dd517e9d15828416ab329da2854",
    "maps": "e5f65d26eb288457f5ac056deb94d154",
}

# Split sizes and halves as documented for these archives (pix2pix paper appendix 6.1, junyanz's
# datasets docs; facades and night2day counts also seen in other projects' listings); archive sizes
# from the server's directory listing. Informational: the loaders read whatever splits are present.
REGISTRY: dict[str, PairedDataset] = {
    d.name: dataclasses.replace(d, md5=_THIRD_PARTY_MD5.get(d.name))
    for d in (
        PairedDataset("cityscapes", {"train": 2975, "val": 500}, (256, 256), "street photo", "label map", "BtoA", "99M"),
        PairedDataset("facades", {"train": 400, "val": 100, "test": 106}, (256, 256), "facade photo", "label map", "BtoA", "29M"),
        PairedDataset("maps", {"train": 1096, "val": 1098}, (600, 600), "aerial photo", "map", "AtoB", "239M"),
        PairedDataset("edges2shoes", {"train": 49825, "val": 200}, (256, 256), "edge map", "shoe photo", "AtoB", "2.0G"),
        PairedDataset("edges2handbags", {"train": 138567, "val": 200}, (256, 256), "edge map", "handbag photo", "AtoB", "8.0G"),
        # The paper's task is day -> night, the right half to the left one.
        PairedDataset("night2day", {"train": 17823, "val": 10, "test": 2287}, (256, 256), "night photo", "day photo", "BtoA", "1.9G"),
    )
}


def get_dataset(name: str) -> PairedDataset:
    """The registry entry for `name`.

    Raises:
        UsageError: no such dataset.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}: choose one of {', '.join(REGISTRY)} (or --data-dir DIR)") from None


def is_prepared(folder: str) -> bool:
    """Whether `folder` already holds an extracted pix2pix-layout dataset (train/ and val/)."""
    return all(os.path.isdir(os.path.join(folder, split)) for split in ("train", "val"))


def fetch_dataset(
    name: str, data_root: str = DEFAULT_DATA_ROOT, allow_unverified: bool = False, url: str | None = None
) -> str:
    """Downloads, verifies and extracts a registry dataset once; later calls return at once, offline.

    Args:
        name: a `REGISTRY` key.
        data_root: the cache folder; the dataset lands in `data_root/name/`.
        allow_unverified: accept an archive whose checksum is not on record.
        url: another origin for the same archive (a mirror, or a local server in tests).

    Returns:
        `data_root/name`, a folder in the pix2pix layout, ready for --data-dir.

    Raises:
        UsageError: the download failed (its cause chained), the checksum does not match, no checksum is on
            record and `allow_unverified` is off, or the archive holds an unsafe member.
    """
    spec = get_dataset(name)
    root = expand_path(data_root)
    target = os.path.join(root, spec.name)
    if is_prepared(target):
        return target
    archive = download_archive(spec, root, allow_unverified, url or spec.url)
    extract_archive(archive, target)
    os.remove(archive)  # the extracted folder is the cache from now on; the archive can be GBs
    logger.info("%s ready in %s", spec.name, target)
    return target


def download_archive(spec: PairedDataset, root: str, allow_unverified: bool, url: str) -> str:
    """`root/NAME.tar.gz`, fetched by keras.utils.get_file and checked against the registry hash."""
    if spec.checksum is None and not allow_unverified:
        raise UsageError(
            f"no published checksum is on record for {spec.archive_name}, so a download could not be verified: "
            f"pass --allow-unverified-download to accept it unchecked (its SHA-256 is logged so you can pin it), "
            f"or download it yourself from {spec.url}, extract it and use --data-dir"
        )
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create --data-root {root}: {err.strerror}; pass a writable --data-root") from err
    if not os.access(root, os.W_OK):  # get_file would silently switch to /tmp/.keras instead
        raise UsageError(f"--data-root {root} is not writable; pass a writable --data-root")
    import keras  # late: the registry above must stay importable without TensorFlow

    logger.info("downloading %s (%s) from %s into %s", spec.archive_name, spec.download_size, url, root)
    path = os.path.join(root, spec.archive_name)
    try:
        keras.utils.get_file(spec.archive_name, url, cache_dir=root, cache_subdir="", file_hash=spec.checksum)
    except ValueError as err:  # hash mismatch: get_file leaves the bad file behind
        _remove(path)
        raise UsageError(
            f"{spec.archive_name} from {url} failed its checksum ({err}); the file was removed. Retry (the "
            f"download may have been cut), or fetch and check it yourself and pass the extracted folder as --data-dir"
        ) from err
    except Exception as err:  # noqa: BLE001 - get_file wraps every fetch failure in a bare Exception
        _remove(path)
        raise UsageError(f"{_download_failure(url, err)} Put the extracted dataset (train/, val/) in a folder and "
                         f"pass it as --data-dir, or place {spec.archive_name} in {root}") from err
    if spec.checksum is None:
        logger.warning("%s is UNVERIFIED (no checksum on record); its sha256 is %s", path, sha256(path))
    return path


def _download_failure(url: str, err: Exception) -> str:
    """The first sentence of a failed download's message; it asks "Offline?" only when the network failed.

    keras.utils.get_file raises a bare Exception from inside its `except URLError`, so the urllib
    error is its `__context__`; socket errors while reading and disk errors come through as they are.
    """
    chain = [err, err.__cause__ or err.__context__]
    http_error = next((e for e in chain if isinstance(e, urllib.error.HTTPError)), None)
    if http_error is not None:  # the server is reachable: the network is fine
        return f"could not download {url}: the server answered HTTP {http_error.code} ({http_error.reason})."
    network = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, socket.gaierror)
    if any(isinstance(e, network) for e in chain):
        return f"could not download {url} ({err}). Offline?"
    return f"could not download {url} ({type(err).__name__}: {err})."


def extract_archive(archive: str, target: str) -> None:
    """Extracts a pix2pix archive into `target` with tarfile's "data" filter, all or nothing.

    The "data" filter refuses members that would land outside the destination (`../x`, absolute
    paths), links pointing outside it, and device files. Extraction goes to a temporary folder
    next to `target` and is renamed into place only when complete.

    Raises:
        UsageError: the archive is unreadable, unsafe, or not in the pix2pix layout.
    """
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".extract-")
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(tmp, filter="data")
        except tarfile.FilterError as err:
            raise UsageError(f"refusing to extract {archive}: {err} (an unsafe member); nothing was extracted") from err
        except (tarfile.TarError, OSError) as err:
            raise UsageError(f"cannot extract {archive}: {err}; delete it and download again") from err
        # The Berkeley archives hold one top folder (facades/train/...); accept a bare train/ too.
        candidates = [tmp] + [os.path.join(tmp, d) for d in sorted(os.listdir(tmp))]
        found = next((c for c in candidates if is_prepared(c)), None)
        if found is None:
            raise UsageError(f"{archive} holds no train/ and val/ folders: not a pix2pix dataset archive")
        if os.path.exists(target):  # a half-made folder from an older layout: keep it aside, never delete data
            os.replace(target, f"{target}.old-{os.getpid()}")
        os.replace(found, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)


def synthetic_data_dir(task, output_dir: str) -> str:
    """Where --dataset synthetic is drawn for `task` (a tasks.base.Task): inside the run's output folder."""
    return os.path.join(output_dir, "data", task.synthetic_folder)


def resolve_data_dir(config, task) -> str:
    """The folder a run trains on, ready: --data-dir, a public dataset fetched once, or the synthetic set drawn now.

    Args:
        config: the run's TrainConfig.
        task: its tasks.base.Task, which draws the synthetic examples it reads.

    Raises:
        UsageError: what `fetch_dataset` raises.
    """
    if config.dataset == "synthetic":
        root = synthetic_data_dir(task, config.output_dir)
        what = "train pairs" if task.reads_pairs else "photos"
        logger.info("writing %d synthetic %s to %s", config.synthetic_pairs, what, root)
        return task.write_synthetic(root, config.synthetic_pairs, size=max(config.image_size), seed=config.seed)
    if config.dataset:  # a public pix2pix dataset: downloaded, checked and extracted once into --data-root
        return fetch_dataset(config.dataset, config.data_root, config.allow_unverified_download)
    return config.data_dir


def run_data_dir(config, task, run_dir: str, fetch: bool = False) -> str:
    """The folder a finished run trained on, for the tools that read it later (evaluate, export).

    Args:
        config: the run's TrainConfig (its config.json).
        task: its tasks.base.Task.
        run_dir: the run's output folder, which holds the synthetic set train.py drew.
        fetch: download a public dataset again if its folder was deleted since.
    """
    if config.dataset == "synthetic":
        return synthetic_data_dir(task, run_dir)
    if config.dataset:
        if fetch:
            return fetch_dataset(config.dataset, config.data_root, config.allow_unverified_download)
        return os.path.join(config.data_root, config.dataset)
    return config.data_dir
