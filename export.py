"""Export a trained generator: `python export.py --help` lists every flag (as `pix2pix-export` / `python -m pix2pix_tf.export`).

    python export.py                                 # latest checkpoint of outputs/ -> exports/pix2pix/
    python export.py --checkpoint-dir runs/city/checkpoints --model-name city --formats savedmodel,fp32
"""

import sys

from pix2pix_tf.deploy.export import main

if __name__ == "__main__":
    sys.exit(main())
