"""`python -m pix2pix_tf.export`: the export command, which lives in pix2pix_tf/deploy/export.py."""

import sys

from pix2pix_tf.deploy.export import main

if __name__ == "__main__":
    sys.exit(main())
