"""`python -m pix2pix_tf.demo`: the demo command, which lives in pix2pix_tf/apps/demo.py."""

import sys

from pix2pix_tf.apps.demo import main

if __name__ == "__main__":
    sys.exit(main())
