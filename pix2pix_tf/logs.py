"""The package's log: one "pix2pix_tf" logger on the console and, for training, appended to a log file."""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("pix2pix_tf")


def setup_logging(log_file: str) -> None:
    """Console + appended log file, one format for both."""
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    # Per-epoch lines go to the file only: the console already shows them in the progress bar.
    console.addFilter(lambda record: not getattr(record, "file_only", False))
    handlers: list[logging.Handler] = [console]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
