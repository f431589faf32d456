"""`python -m pix2pix_tf.ship`: the command that writes pix2pix_tf/pretrained/'s models; it lives in pix2pix_tf/apps/ship.py."""

import sys

from pix2pix_tf.apps.ship import main

if __name__ == "__main__":
    sys.exit(main())
