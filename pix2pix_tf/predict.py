"""`python -m pix2pix_tf.predict`: the predict command, which lives in pix2pix_tf/apps/predict.py."""

import sys

from pix2pix_tf.apps.predict import main

if __name__ == "__main__":
    sys.exit(main())
