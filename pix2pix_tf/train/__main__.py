"""Train pix2pix: paired image-to-image translation (Isola et al. 2017).

    python train.py --dataset synthetic --epochs 2 --image-size 64 --batch-size 4   # offline quick run
    python train.py --data-dir ../shared/datasets/cityscapes --epochs 50 --batch-size 16
    python train.py --dataset facades --epochs 200 --batch-size 1                   # download (checked), then train
    python train.py --dataset cityscapes --data-source tfds                         # via tfds.load("pix2pix/cityscapes")
    python train.py --data-dir DIR --direction AtoB --image-size 256x512            # wide pairs

`pix2pix-train` (installed with the package) and `python -m pix2pix_tf.train` take the same flags.
Re-running the same command resumes from the latest checkpoint in --output-dir; --restart starts over.
SIGTERM/SIGINT save a checkpoint of the current step and exit with 128+signal (143/130).
"""

from __future__ import annotations

import argparse
import sys

from pix2pix_tf.config import UsageError, add_config_flags, config_from_args, prog_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog_name("pix2pix_tf.train"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_flags(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    # TensorFlow loads only once the flags are known to be good.
    from pix2pix_tf.train.guards import Interrupted, NonFiniteLoss
    from pix2pix_tf.train.loop import train

    try:
        train(config)
    except UsageError as err:
        parser.error(str(err))
    except Interrupted as stop:
        print(f"{parser.prog}: {stop}", file=sys.stderr)
        return 128 + stop.signum  # the shell's convention for "ended by this signal"
    except NonFiniteLoss as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
