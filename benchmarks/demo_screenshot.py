"""docs/demo.png: the browser demo painting a val label map with an exported model (headless chromium).

    python export.py --checkpoint-dir outputs/cityscapes-1h --export-dir outputs/cityscapes-1h-export --model-name pix2pix \
        --formats savedmodel --resize-mode squash
    python benchmarks/demo_screenshot.py --model outputs/cityscapes-1h-export/pix2pix \
        --examples ../shared/datasets/cityscapes --example 1 --out docs/demo.png

Starts `python -m pix2pix_tf.demo` on a free port, loads example N (the N-th val label map), presses
Translate, waits for the result and saves the page. Needs playwright and a chromium (`PIX2PIX_CHROMIUM`,
default /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an exported SavedModel (or its versions folder)")
    parser.add_argument("--examples", required=True, help="a pix2pix-layout folder whose val/ label maps are the examples")
    parser.add_argument("--example", type=int, default=1, help="which example to load (1 = the first val pair)")
    parser.add_argument("--out", default="docs/demo.png")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, "-m", "pix2pix_tf.demo", "--model", args.model,
                               "--examples", args.examples, "--port", str(port)])  # fmt: skip
    try:
        for _ in range(600):  # the model loads before the server listens
            try:
                urllib.request.urlopen(url + "api/info", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"the demo exited with {server.returncode}")
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("PIX2PIX_CHROMIUM", "/usr/bin/chromium"),
                                        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1120, "height": 720})
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            for _ in range(args.example):
                page.click("#example")
            page.wait_for_function(f"() => document.getElementById('status').textContent.startsWith('Example {args.example}')")
            page.click("#translate")
            page.wait_for_function("() => document.getElementById('result').dataset.generation === '1'", timeout=120_000)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
