"""Score a trained run: `python evaluate.py --help` lists every flag (as `pix2pix-evaluate` / `python -m pix2pix_tf.evaluate`).

    python evaluate.py --checkpoint-dir outputs --split val        # writes outputs/report/index.html, metrics.json
"""

import sys

from pix2pix_tf.evaluate.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
