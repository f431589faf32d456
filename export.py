"""Export a trained pix2pix generator: SavedModel (TF Serving layout), TFLite fp32/fp16/int8, export_report.json.

    python export.py                                            # latest checkpoint of outputs/, into exports/pix2pix/
    python export.py --checkpoint-dir runs/city/checkpoints --export-dir exports --model-name city
    python export.py --keras-file generator.keras --eval-dir DATA/val --calibration-dir DATA/train
    python export.py --formats savedmodel,fp32 --version 3 --overwrite
    python export.py --formats savedmodel,onnx                  # ONNX needs: pip install 'pix2pix_tf[onnx]'
    python export.py --test-mode paper --model-name pix2pix-paper --formats savedmodel   # dropout on, per-image BN
    python export.py --resize-mode squash                       # signatures translate at the training size

Writes EXPORT_DIR/MODEL_NAME/VERSION/ (SavedModel: serving_default, translate_encoded, translate_float),
EXPORT_DIR/MODEL_NAME/generator_{fp32,fp16,int8,int8_full}.tflite, EXPORT_DIR/MODEL_NAME/generator.onnx (when asked)
and EXPORT_DIR/MODEL_NAME/export_report.json.
"""

from __future__ import annotations

import argparse
import json
import sys

from pix2pix_tf.config import UsageError, add_config_flags, config_from_args
from pix2pix_tf.export_report import ExportConfig, run_export
from pix2pix_tf.training import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser, ExportConfig)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args, ExportConfig)
        setup_logging("")
        report = run_export(config)
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    print(json.dumps(report["formats"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
