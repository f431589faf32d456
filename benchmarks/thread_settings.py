"""Thread and oneDNN settings of the recipe's train step, each in its own process, interleaved over rounds.

TensorFlow fixes its thread pools and oneDNN switch when it starts, so `train_throughput.py` (variants in one
process) cannot compare them: this runs it once per setting and round (rounds interleave the settings, so drift
of a shared machine falls on all of them alike) and reports the median of each setting's per-process medians,
as a ratio to TensorFlow's defaults.

    python benchmarks/thread_settings.py --rounds 3 --results benchmarks/results/thread-settings.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {  # name -> environment added to the process
    "TF defaults": {},
    "intra 2, inter 1": {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"},
    "intra 1, inter 2": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "2"},
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


def one_run(env: dict, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [sys.executable, os.path.join(HERE, "train_throughput.py"), "--image-size", str(args.image_size),
                   "--filters", str(args.filters), "--batch-sizes", str(args.batch_size), "--variants", "auto",
                   "--repeats", str(args.repeats), "--steps", str(args.steps), "--json", out]  # fmt: skip
        subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True)
        with open(out) as f:
            rows = json.load(f)["steps"]
    return {row["step"]: row["img_per_sec"] for row in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--results", default="", help="write the per-process figures and medians here (JSON)")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {name: [] for name in args.settings}
    for round_ in range(args.rounds):
        for name in args.settings:
            runs[name].append(one_run(SETTINGS[name], args))
            print(f"round {round_ + 1} {name}: {runs[name][-1]}", flush=True)
    base = statistics.median(r["auto"] for r in runs[args.settings[0]])
    print("| setting | environment | ours img/s (median of processes) | per process | ÷ TF defaults | reference step img/s |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for name in args.settings:
        ours = [r["auto"] for r in runs[name]]
        reference = statistics.median(r["reference"] for r in runs[name])
        summary[name] = {"env": SETTINGS[name], "ours": ours, "median": statistics.median(ours), "reference_median": reference}
        env = " ".join(f"{k}={v}" for k, v in SETTINGS[name].items()) or "—"
        print(f"| {name} | `{env}` | {statistics.median(ours):.1f} | {', '.join(f'{x:.1f}' for x in ours)} | "
              f"{statistics.median(ours) / base:.2f} | {reference:.1f} |")
    if args.results:
        with open(args.results, "w") as f:
            json.dump({"args": vars(args), "settings": summary, "load": os.getloadavg()}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
