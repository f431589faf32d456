"""The evaluation command: `pix2pix-evaluate`, `python -m pix2pix_tf.evaluate` or `python evaluate.py` (main in __main__.py)."""
