"""Train pix2pix: `python train.py --help` lists every flag (the same as `pix2pix-train` / `python -m pix2pix_tf.train`).

    python train.py --dataset synthetic --epochs 2 --image-size 64 --batch-size 4   # offline quick run
    python train.py --data-dir ../shared/datasets/cityscapes --epochs 50 --batch-size 16
"""

import sys

from pix2pix_tf.train.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
