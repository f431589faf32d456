"""A TFDS builder for the public pix2pix datasets: `tfds.load("pix2pix/cityscapes")` after importing this module.

    import tensorflow_datasets as tfds
    import pix2pix_tf.data.tfds  # registers the "pix2pix" builder
    ds = tfds.load("pix2pix/facades", split="train")  # {input_image, target_image, file_name}
    # from a folder you already have (NAME/ with train/, val/, or NAME.tar.gz) instead of downloading:
    ds = tfds.load("pix2pix/cityscapes", split="val", download_and_prepare_kwargs={
        "download_config": tfds.download.DownloadConfig(manual_dir="../shared/datasets")})

`input_image`/`target_image` follow the dataset's own task (`data.sources.REGISTRY[name].direction`,
e.g. label map -> photo for cityscapes); images are stored as PNG, so the halves are bit-exact.
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_datasets as tfds

from ..files import expand_path
from . import sources as datasets
from .pairs import list_images, load_pair


class Pix2pix(tfds.core.GeneratorBasedBuilder):
    """The Berkeley pix2pix paired datasets, one config per dataset."""

    name = "pix2pix"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Halves split from the side-by-side archives, in each dataset's task direction."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=d.name, description=d.describe()) for d in datasets.REGISTRY.values()]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Optional: put NAME/ (with train/, val/) or NAME.tar.gz from "
        f"{datasets.BASE_URL}/ in the manual dir to skip the download."
    )

    def __init__(self, *, data_root: str = datasets.DEFAULT_DATA_ROOT, allow_unverified_download: bool = False, **kwargs):
        """As tfds.core.DatasetBuilder, plus where a download goes and whether an unchecked archive is accepted."""
        self._data_root = data_root
        self._allow_unverified = allow_unverified_download
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        spec = datasets.get_dataset(self.builder_config.name)
        image = tfds.features.Image(shape=(None, None, 3))
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"pix2pix {spec.describe()}",
            features=tfds.features.FeaturesDict(
                {"input_image": image, "target_image": image, "file_name": tfds.features.Text()}
            ),
            supervised_keys=("input_image", "target_image"),
            homepage="https://phillipi.github.io/pix2pix/",
            citation="@inproceedings{isola2017image, title={Image-to-Image Translation with Conditional "
            "Adversarial Networks}, author={Isola, Phillip and Zhu, Jun-Yan and Zhou, Tinghui and Efros, "
            "Alexei A}, booktitle={CVPR}, year={2017}}",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        spec = datasets.get_dataset(self.builder_config.name)
        folder = self._source_folder(dl_manager, spec)
        present = [s for s in spec.splits if any(os.path.isdir(os.path.join(folder, *p)) for p in ((s,), ("A", s)))]
        return {split: self._generate_examples(list_images(folder, split), spec.direction) for split in present}

    def _source_folder(self, dl_manager: tfds.download.DownloadManager, spec: datasets.PairedDataset) -> str:
        """The extracted dataset: from the manual dir if it has it, else the checksummed download."""
        try:
            manual = os.fspath(dl_manager.manual_dir)
        except AssertionError:  # no manual dir given (or it is empty): download instead
            manual = None
        if manual:
            for folder in (os.path.join(manual, spec.name), manual):
                if datasets.is_prepared(folder):
                    return folder
            archive = os.path.join(manual, spec.archive_name)
            if os.path.exists(archive):
                target = os.path.join(os.fspath(dl_manager.download_dir), spec.name)
                if not datasets.is_prepared(target):
                    datasets.extract_archive(archive, target)
                return target
        return datasets.fetch_dataset(spec.name, self._data_root, self._allow_unverified)

    def _generate_examples(self, pairs, direction: str):
        for pair in pairs:
            item = tf.constant(pair)
            input_image, target_image = load_pair(item, direction)
            a_path = pair[0] if isinstance(pair, tuple) else pair
            yield a_path, {
                "input_image": input_image.numpy(),
                "target_image": target_image.numpy(),
                "file_name": os.path.basename(a_path),
            }


def load_pix2pix_split(config, split: str) -> tf.data.Dataset:
    """One split of `pix2pix/NAME` as pipeline elements for data.pairs.load_pair: dicts of encoded `a`/`b` halves (+ file_name).

    Images stay encoded (SkipDecoding) so the shuffle buffer holds compressed bytes; load_pair
    decodes them and applies `config.direction`, which may differ from the dataset's own task.
    """
    spec = datasets.get_dataset(config.dataset)
    root = expand_path(config.data_root)
    ds = tfds.load(
        f"pix2pix/{spec.name}",
        split=split,
        data_dir=os.path.join(root, "tfds"),
        builder_kwargs={"data_root": root, "allow_unverified_download": config.allow_unverified_download},
        decoders={"input_image": tfds.decode.SkipDecoding(), "target_image": tfds.decode.SkipDecoding()},
        shuffle_files=False,  # data.make_train_dataset shuffles, seeded, so a resumed run replays the same order
    )
    a_key, b_key = ("input_image", "target_image") if spec.direction == "AtoB" else ("target_image", "input_image")
    return ds.map(lambda ex: {"a": ex[a_key], "b": ex[b_key], "file_name": ex["file_name"]})
