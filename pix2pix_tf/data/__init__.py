"""Data: tf.data pipelines for pairs, where a run's data comes from (folders, downloads, TFDS, synthetic), the pre-flight scan."""
