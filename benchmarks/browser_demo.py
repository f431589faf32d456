"""The static demo's translation time in the browser: headless chromium, onnxruntime-web on WebAssembly.

    python benchmarks/browser_demo.py                          # 128² and 256², one thread and threads
    python benchmarks/browser_demo.py --sizes 128 --repeats 5

For each size it builds a generator of the recipe's shape (`--generator-filters 32`, the depth the config
computes for the size: 7 at 128², 8 at 256²; random weights, which take as long as trained ones), writes the
site with pix2pix-site, serves it on 127.0.0.1 and opens it in chromium with `?ep=wasm`. Twice: as GitHub Pages
serves it (no COOP/COEP headers, so one thread), and cross-origin isolated (the headers sent, so
min(4, cores) threads). In the page it loads an example and translates it `--warmup` + `--repeats` times
through the page's own backend; it reports the medians of the whole translation (pixels in, PNG out: what
the user waits for after pressing Translate) and of `session.run` alone, and the time from opening the page
to a loaded model. For scale, the same generator.onnx on onnxruntime in Python (native x86 kernels, the
same 1 or 2 threads) on the same input. Needs the runtime (pix2pix-site --install-runtime), playwright and a chromium
(`PIX2PIX_CHROMIUM`, default /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pix2pix_tf.apps import site  # noqa: E402
from pix2pix_tf.config import auto_generator_depth  # noqa: E402
from pix2pix_tf.core.networks import build_generator  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

# In the page: the example on the canvas translated through the page's backend, each call timed whole.
TIME_TRANSLATIONS = """async (count) => {
  const canvas = document.getElementById('label');
  const times = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await window.pix2pixBackend.translate(canvas);
    times.push({total: performance.now() - started, run: window.pix2pixSite.lastRunMs});
  }
  return times;
}"""


def build(size: int, filters: int, folder: str) -> tuple[str, int]:
    """The site of a random-weight generator of the recipe's shape at `size`²; (site folder, parameter count)."""
    generator = build_generator((size, size), filters=filters, depth=auto_generator_depth((size, size)))
    keras_file = os.path.join(folder, f"generator-{size}.keras")
    generator.save(keras_file)
    out = os.path.join(folder, f"site-{size}")
    site.build_site(keras_file, out, example_count=1)
    return out, generator.count_params()


def measure(browser, url: str, warmup: int, repeats: int) -> dict:
    page = browser.new_page()
    try:
        opened = time.perf_counter()
        page.goto(url + "?ep=wasm")
        page.wait_for_selector("body[data-ready=true]")
        page.evaluate("window.pix2pixSite.ready.then(() => true)")
        ready_s = time.perf_counter() - opened
        page.click("#example")
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Example 1')")
        times = page.evaluate(TIME_TRANSLATIONS, warmup + repeats)[warmup:]
        backend = page.evaluate("({ep: pix2pixSite.ep, threads: pix2pixSite.threads})")
    finally:
        page.close()
    return {
        **backend,
        "translate_ms": statistics.median(t["total"] for t in times),
        "run_ms": statistics.median(t["run"] for t in times),
        "translate_ms_all": [round(t["total"], 1) for t in times],
        "ready_s": ready_s,
    }


def measure_native(site_dir: str, threads: int, warmup: int, repeats: int) -> float:
    """Median ms of onnxruntime in Python (CPU) on the site's model and first example, on `threads` threads."""
    import numpy as np
    import onnxruntime
    import tensorflow as tf

    from pix2pix_tf.data.pairs import to_float

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(os.path.join(site_dir, site.MODEL_PATH), options)
    label = tf.io.decode_png(tf.io.read_file(os.path.join(site_dir, "examples", "0.png"))).numpy()
    feed = {session.get_inputs()[0].name: np.asarray(to_float(label[np.newaxis]))}
    times = []
    for _ in range(warmup + repeats):
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[warmup:])


def cpu_model() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--generator-filters", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed translations first (the first one compiles)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default="", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        chromium = os.environ.get("PIX2PIX_CHROMIUM", "/usr/bin/chromium")
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        version = browser.version
        try:
            for size in args.sizes:
                out, params = build(size, args.generator_filters, folder)
                model_mb = os.path.getsize(os.path.join(out, site.MODEL_PATH)) / 1e6
                for isolated in (False, True):
                    server = site.serve_static(out, isolated)
                    try:
                        result = measure(browser, f"http://127.0.0.1:{server.server_address[1]}/", args.warmup,
                                         args.repeats)  # fmt: skip
                    finally:
                        server.shutdown()
                        server.server_close()
                    native = measure_native(out, result["threads"], args.warmup, args.repeats)
                    rows.append({"size": size, "params": params, "model_mb": model_mb, "isolated": isolated, **result,
                                 "native_run_ms": native})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            browser.close()
    environment = {
        "date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()], "chromium": version,
        "onnxruntime_web": site.runtime_version(),
    }  # fmt: skip
    print(f"\n{environment}\n")
    print("| size | params | model | threads | translate (median) | session.run (median) | page to model loaded "
          "| onnxruntime in Python, session.run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['size']}² | {row['params']:,} | {row['model_mb']:.1f} MB | {row['threads']} | "
              f"{row['translate_ms']:.0f} ms | {row['run_ms']:.0f} ms | {row['ready_s']:.1f} s | "
              f"{row['native_run_ms']:.0f} ms |")  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"environment": environment, "rows": rows, "argv": sys.argv[1:]}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
