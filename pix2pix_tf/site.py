"""`python -m pix2pix_tf.site`: the static demo site command, which lives in pix2pix_tf/apps/site.py."""

import sys

from pix2pix_tf.apps.site import main

if __name__ == "__main__":
    sys.exit(main())
