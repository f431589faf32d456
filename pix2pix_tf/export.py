"""`python -m pix2pix_tf.export`: the export command, which lives in pix2pix_tf/deploy/savedmodel.py."""

import sys

from pix2pix_tf.deploy.savedmodel import main

if __name__ == "__main__":
    sys.exit(main())
