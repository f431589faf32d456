"""The training command: `pix2pix-train`, `python -m pix2pix_tf.train` or `python train.py` (main in __main__.py)."""
