"""Train img/s of `train.py` itself (steady state, first step excluded) at given batch sizes.

    python benchmarks/train_cli_throughput.py --data-dir ../shared/datasets/cityscapes --batch-sizes 1 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train as train_script  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--image-size", default="256")
    parser.add_argument("--images", type=int, default=96, help="images to train per batch size (after the first step)")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further train.py flags")
    args = parser.parse_args(argv)
    results = []
    for batch in args.batch_sizes:
        with tempfile.TemporaryDirectory() as out:
            steps = 1 + max(2, args.images // batch)
            start = time.perf_counter()
            train_script.main([
                "--data-dir", args.data_dir, "--image-size", args.image_size, "--batch-size", str(batch),
                "--epochs", "1", "--steps-per-epoch", str(steps), "--val-steps", "1", "--num-samples", "0",
                "--output-dir", out, "--log-file", os.path.join(out, "log.txt"), *args.extra,
            ])
            row = json.load(open(os.path.join(out, "history.json")))[0]
            results.append({"batch_size": batch, "steps": steps, "img_per_sec": round(row["img_per_sec"], 3),
                            "wall_seconds": round(time.perf_counter() - start, 1)})
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                      "image_size": args.image_size, "results": results}, indent=2))


if __name__ == "__main__":
    main()
