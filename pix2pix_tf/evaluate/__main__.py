"""Score a trained pix2pix run: L1 / PSNR / SSIM on a split, an HTML report, and optionally the FCN-score.

    python evaluate.py --checkpoint-dir outputs --split val                    # the run's own data
    python evaluate.py --checkpoint-dir outputs --data-dir ../shared/datasets/cityscapes --split val
    python -m pix2pix_tf.segmenter train --data-dir ../shared/datasets/cityscapes --output-dir outputs/segmenter
    python evaluate.py --checkpoint-dir outputs --fcn-score outputs/segmenter  # + the paper's FCN-score
    python evaluate.py --checkpoint-dir outputs --fcn-score ../shared/judges/cityscapes-fcn  # a SavedModel judge
    python evaluate.py --checkpoint-dir outputs --test-mode paper              # the paper's test time (dropout on)

`pix2pix-evaluate` (installed with the package) and `python -m pix2pix_tf.evaluate` take the same flags.
Writes CHECKPOINT_DIR/report/index.html (input | generated | target rows, the metrics tables) and metrics.json,
and prints metrics.json as the last line of stdout (one JSON line per evaluation, for scripts).
"""

from __future__ import annotations

import argparse
import json
import sys

from pix2pix_tf.config import UsageError, add_config_flags, config_from_args, prog_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog_name("pix2pix_tf.evaluate"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from pix2pix_tf.evaluate.evaluation import EvalConfig, evaluate

    add_config_flags(parser, EvalConfig)
    args = parser.parse_args(argv)
    try:
        results = evaluate(config_from_args(args, EvalConfig))
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
