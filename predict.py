"""Translate images: `python predict.py --help` lists every flag (as `pix2pix-predict` / `python -m pix2pix_tf.predict`).

    python predict.py labels/ --output-dir predictions                        # latest checkpoint of outputs/
    python predict.py 'val/*.jpg' --pairs BtoA --side-by-side --backend savedmodel --model exports/pix2pix
    python predict.py img.png --backend serving-rest --server http://localhost:8501
"""

import sys

from pix2pix_tf.apps.predict import main

if __name__ == "__main__":
    sys.exit(main())
