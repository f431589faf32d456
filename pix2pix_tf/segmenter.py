"""`python -m pix2pix_tf.segmenter`: the segmenter command, which lives in pix2pix_tf/evaluate/segmenter.py."""

import sys

from pix2pix_tf.evaluate.segmenter import main

if __name__ == "__main__":
    sys.exit(main())
