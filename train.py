"""Train pix2pix: paired image-to-image translation (Isola et al. 2017).

    python train.py --dataset synthetic --epochs 2 --image-size 64 --batch-size 4   # offline quick run
    python train.py --data-dir ../shared/datasets/cityscapes --epochs 50 --batch-size 16
    python train.py --dataset facades --epochs 200 --batch-size 1                   # download (checked), then train
    python train.py --dataset cityscapes --data-source tfds                         # via tfds.load("pix2pix/cityscapes")
    python train.py --data-dir DIR --direction AtoB --image-size 256x512            # wide pairs

Re-running the same command resumes from the latest checkpoint in --output-dir; --restart starts over.
"""

from __future__ import annotations

import argparse
import sys

from pix2pix_tf.config import UsageError, add_config_flags, config_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        from pix2pix_tf.training import train  # TensorFlow loads only once the flags are known to be good

        train(config)
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
