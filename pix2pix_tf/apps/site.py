"""The demo page as a static site: the generator runs in the visitor's browser (onnxruntime-web), no Python server.

    pix2pix-site --install-runtime                     # once: onnxruntime-web from npm into a cache folder
    pix2pix-site --model exports/pix2pix --output-dir site --examples ../shared/datasets/cityscapes
    python -m http.server --directory site 8000        # or any static host: GitHub Pages, S3, nginx

`--model` takes an export folder holding generator.onnx (export.py --formats savedmodel,onnx), a .onnx file, a
.keras file or a train.py run (converted here with the project's ONNX export). OUTPUT_DIR gets the demo's
page (index.html, static/) with static/site.js as its backend, the runtime's files (static/ort/), the model
(model/generator.onnx), example label maps at the model's size (examples/N.png) and site.json (palette,
model size, runtime version). Every URL in it is relative, so the folder works under any path.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import http.server
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from importlib import resources

from ..config import prog_name
from ..errors import UsageError
from ..files import user_path, write_json
from ..pretrained import PREFIX

# The modules that load TensorFlow are imported inside the functions that need them, so that --help and
# --install-runtime (run by scripts/test.sh) answer without it.

# The runtime: the committed package.json pins the version, the lock file the integrity of every package.
RUNTIME_PACKAGE = "onnxruntime-web"
RUNTIME_SPEC_FILES = ("package.json", "package-lock.json")
# The runtime files the page loads, by execution provider. The WebGPU build's .wasm is twice the plain one's,
# so the page fetches it only where the browser has a WebGPU adapter.
RUNTIME_FILES = {
    "wasm": ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
    "webgpu": ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"),
}
INSTALL_HINT = "pix2pix-site --install-runtime"
MODEL_PATH = "model/generator.onnx"  # in the site, relative to index.html
SITE_JSON = "site.json"  # also the mark of a folder this command wrote: --overwrite replaces only such a folder
# The page may load nothing from elsewhere (it works offline, and a CDN would see the visitor); WebAssembly
# compilation needs 'wasm-unsafe-eval', the runtime's threads are module workers from 'self'.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "img-src 'self' blob: data:; style-src 'self'; connect-src 'self'")  # fmt: skip
# What a host sends to make a page cross-origin isolated, the only kind of page a browser gives threads (the
# SharedArrayBuffer they need). GitHub Pages cannot send them; the page then runs on one thread.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
# Where the site's page differs from the demo server's: the CSP (a static host sends no header for it) and
# static/site.js, which must run before demo.js to give it the in-browser backend.
PAGE_EDITS = (
    ('<meta charset="utf-8">',
     f'<meta charset="utf-8">\n  <meta http-equiv="Content-Security-Policy" content="{CSP}">'),
    ('<script defer src="static/demo.js">',
     '<script type="module" src="static/site.js"></script>\n  <script defer src="static/demo.js">'),
)  # fmt: skip

log = logging.getLogger("pix2pix_tf.site")


def _static(folder: str, name: str):
    return resources.files("pix2pix_tf.apps") / folder / name


def runtime_file_names() -> list[str]:
    return [name for names in RUNTIME_FILES.values() for name in names]


def runtime_version() -> str:
    """The onnxruntime-web version the committed package.json pins."""
    return json.loads(_static("site_static", "package.json").read_text())["dependencies"][RUNTIME_PACKAGE]


def default_runtime_dir() -> str:
    """A per-version folder in the user's cache: outside any checkout, shared by every site built here."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "pix2pix_tf", f"{RUNTIME_PACKAGE}-{runtime_version()}")


def install_runtime(runtime_dir: str) -> str:
    """`npm ci` of the committed package.json and lock file into `runtime_dir`; returns the runtime's dist/ folder.

    Nothing is fetched when `runtime_dir` already holds a complete install of the same lock file (scripts/test.sh
    runs this before every test run).

    Raises:
        UsageError: npm is missing or fails.
    """
    lock = _static("site_static", "package-lock.json").read_bytes()
    try:
        with open(os.path.join(runtime_dir, "package-lock.json"), "rb") as f:
            if f.read() == lock:
                return runtime_dist(runtime_dir)
    except (OSError, UsageError):
        pass  # not installed, or not completely: install
    npm = shutil.which("npm")
    if npm is None:
        raise UsageError("npm is not installed: install Node.js with npm (Debian: apt-get install -y npm), "
                         f"then run {INSTALL_HINT}")  # fmt: skip
    os.makedirs(runtime_dir, exist_ok=True)
    for name in RUNTIME_SPEC_FILES:
        with open(os.path.join(runtime_dir, name), "wb") as f:
            f.write(_static("site_static", name).read_bytes())
    # --ignore-scripts: the copied files are prebuilt; no package's install script needs to run.
    command = [npm, "ci", "--prefix", runtime_dir, "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel", "error"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"npm ci of {RUNTIME_PACKAGE} into {runtime_dir} failed ({last}): check that the npm "
                         f"registry is reachable, then run {INSTALL_HINT} again")  # fmt: skip
    return runtime_dist(runtime_dir)


def runtime_dist(runtime_dir: str) -> str:
    """The installed runtime's dist/ folder, checked to hold every file the page loads, at the pinned version.

    Raises:
        UsageError: the runtime is missing, incomplete or another version; the message names the install command.
    """
    package = os.path.join(runtime_dir, "node_modules", RUNTIME_PACKAGE)
    version, wanted = "", runtime_version()
    try:
        with open(os.path.join(package, "package.json")) as f:
            version = json.load(f).get("version", "")
    except (OSError, ValueError):
        pass
    dist = os.path.join(package, "dist")
    missing = [name for name in runtime_file_names() if not os.path.isfile(os.path.join(dist, name))]
    if version != wanted or missing:
        if not version:
            found = "not installed"
        else:
            found = f"version {version}" if version != wanted else f"incomplete ({missing[0]} is missing)"
        raise UsageError(f"{RUNTIME_PACKAGE} {wanted} is {found} in {runtime_dir}: run {INSTALL_HINT} (needs npm)")
    return dist


def read_model(model: str) -> tuple[bytes, str]:
    """The generator as ONNX bytes, and a name for it that the page shows (no local path: the site is public).

    Raises:
        UsageError: `model` is none of the accepted kinds, or what loading or converting it raises.
    """
    from ..deploy.onnx import ONNX_FILE
    from ..run import CONFIG_FILE, find_run_dir, is_checkpoint_prefix

    if model.startswith(PREFIX):
        from ..deploy.onnx import convert_onnx
        from ..pretrained import load_generator

        run = load_generator(model[len(PREFIX) :])
        return convert_onnx(run.generator), f"pretrained {run.pretrained} (epoch {run.epoch})"
    path = os.path.normpath(model)
    exported = os.path.join(path, ONNX_FILE)
    onnx_file = exported if os.path.isfile(exported) else path
    if onnx_file.endswith(".onnx"):
        if not os.path.isfile(onnx_file):
            raise UsageError(f"--model {model} does not exist: export one with export.py --formats savedmodel,onnx")
        with open(onnx_file, "rb") as f:
            return f.read(), os.path.basename(onnx_file)
    if path.endswith(".keras") and not os.path.isfile(path):
        raise UsageError(f"--model {model} does not exist: pass a .keras generator file")
    is_run = is_checkpoint_prefix(path) or os.path.isfile(os.path.join(find_run_dir(path), CONFIG_FILE))
    if path.endswith(".keras") or is_run:
        from ..deploy.onnx import convert_onnx
        from ..run import load_generator

        keras_file = path if path.endswith(".keras") else ""
        run = load_generator(checkpoint_dir="" if keras_file else path, keras_file=keras_file)
        name = os.path.basename(run.checkpoint) + (f" (epoch {run.epoch})" if run.epoch else "")
        return convert_onnx(run.generator), name
    raise UsageError(f"--model {model}: not an export folder holding {ONNX_FILE}, a .onnx or .keras file, or a "
                     "train.py run folder (holding config.json): pass one of those")  # fmt: skip


def model_signature(onnx_bytes: bytes, directory: str) -> tuple[str, tuple[int, int]]:
    """(input name, (height, width)) of the ONNX generator, loaded on onnxruntime as a check that it runs.

    Raises:
        UsageError: the model is no square RGB -> RGB generator of a fixed size, which the painting page needs.
    """
    import numpy as np

    from ..deploy.onnx import OnnxGenerator

    path = os.path.join(directory, "check.onnx")
    with open(path, "wb") as f:
        f.write(onnx_bytes)
    generator = OnnxGenerator(path)
    os.remove(path)
    shape = list(generator.input_shape)
    fixed = len(shape) == 4 and all(isinstance(side, int) for side in shape[1:])
    out_shape = generator(np.zeros([1, *shape[1:]], np.float32)).shape if fixed else ()
    if not fixed or shape[3] != 3 or out_shape != (1, *shape[1:]):
        raise UsageError(f"the model takes {shape} and gives {list(out_shape)}: the painting page needs a "
                         "generator of RGB label maps to RGB photos at a fixed size [N, H, W, 3] (a paired task's "
                         "export)")  # fmt: skip
    if shape[1] != shape[2]:
        raise UsageError(f"the model translates {shape[2]}x{shape[1]} images: the painting page's canvas is square; "
                         "train or export a square model")  # fmt: skip
    return generator.input_name, (shape[1], shape[2])


def example_pngs(
    examples: str, direction: str, count: int, side: int, seed: int = 0, label_maps: list[str] | None = None
) -> list[bytes]:
    """`count` label maps as `side`-square PNGs: the first val pairs of `examples`, or the `label_maps` files
    (a pretrained model's), or synthetic layouts without either."""
    import numpy as np
    import tensorflow as tf

    from ..data.synthetic import draw_pair
    from .demo import Examples

    if examples or label_maps:
        folder = Examples(examples, direction, side, label_maps=None if examples else label_maps)
        return [folder.png(index) for index in range(min(count, len(folder)))]
    rng = np.random.default_rng(seed)
    return [tf.io.encode_png(draw_pair(rng, side)[1]).numpy() for _ in range(count)]


def site_metadata(onnx_bytes: bytes, name: str, input_name: str, size: tuple[int, int], examples: int) -> dict:
    """site.json: what demo.js asks the server's /api/info for, and what site.js needs to run the model."""
    from .demo import PALETTE

    return {
        "palette": [{"name": label, "rgb": list(rgb)} for label, rgb in PALETTE],
        "examples": examples,
        "canvas": size[0],
        "model": MODEL_PATH,
        "model_bytes": len(onnx_bytes),
        "model_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "source": name,
        "input": input_name,
        "image_size": list(size),
        "test_mode": "eval",  # the only mode ONNX export converts
        "runtime": {"package": RUNTIME_PACKAGE, "version": runtime_version(), "license": "MIT"},
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def page_html() -> str:
    """The demo server's index.html with the site's two differences (PAGE_EDITS)."""
    html = _static("demo_static", "index.html").read_text()
    for anchor, replacement in PAGE_EDITS:
        if html.count(anchor) != 1:  # a changed demo page: this build would silently lose the backend or the CSP
            raise RuntimeError(f"demo_static/index.html no longer holds {anchor!r} once")
        html = html.replace(anchor, replacement)
    return html


def write_site(folder: str, onnx_bytes: bytes, examples: list[bytes], metadata: dict, dist: str) -> None:
    """Writes the whole site into `folder` (new and empty)."""
    static = os.path.join(folder, "static")
    os.makedirs(os.path.join(static, "ort"))
    with open(os.path.join(folder, "index.html"), "w") as f:
        f.write(page_html())
    for source, name in (("demo_static", "demo.js"), ("demo_static", "demo.css"), ("site_static", "site.js")):
        with open(os.path.join(static, name), "wb") as f:
            f.write(_static(source, name).read_bytes())
    for name in runtime_file_names():
        shutil.copyfile(os.path.join(dist, name), os.path.join(static, "ort", name))
    os.makedirs(os.path.join(folder, os.path.dirname(MODEL_PATH)))
    with open(os.path.join(folder, MODEL_PATH), "wb") as f:
        f.write(onnx_bytes)
    os.makedirs(os.path.join(folder, "examples"))
    for index, png in enumerate(examples):
        with open(os.path.join(folder, "examples", f"{index}.png"), "wb") as f:
            f.write(png)
    open(os.path.join(folder, ".nojekyll"), "w").close()  # GitHub Pages: publish the files as they are
    write_json(os.path.join(folder, SITE_JSON), metadata)


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """Raises UsageError unless `output_dir` is new, empty, or (with --overwrite) a site this command wrote."""
    if not os.path.exists(output_dir) or (os.path.isdir(output_dir) and not os.listdir(output_dir)):
        return
    if not os.path.isdir(output_dir):
        raise UsageError(f"--output-dir {output_dir} is a file: pick a folder name")
    if not os.path.isfile(os.path.join(output_dir, SITE_JSON)):
        raise UsageError(f"--output-dir {output_dir} holds other files (no {SITE_JSON}): pick a new or empty folder")
    if not overwrite:
        raise UsageError(f"--output-dir {output_dir} already holds a site: pass --overwrite to replace it")


def build_site(model: str, output_dir: str, examples: str = "", direction: str = "BtoA", example_count: int = 8,
               runtime_dir: str = "", overwrite: bool = False) -> dict:  # fmt: skip
    """Writes the static site into `output_dir`, whole or not at all; returns its site.json.

    The site is built in a temporary folder beside `output_dir` and renamed into place, so a failure leaves
    any previous site as it was.

    Raises:
        UsageError: a missing runtime, an unusable model or examples folder, an occupied output folder.
    """
    output_dir = os.path.normpath(output_dir)
    check_output_dir(output_dir, overwrite)
    dist = runtime_dist(runtime_dir or default_runtime_dir())  # before the model: conversion takes a while
    if examples and not os.path.isdir(examples):
        raise UsageError(f"--examples {examples} is not a folder: pass a dataset folder holding val/")
    onnx_bytes, name = read_model(model)
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    building = tempfile.mkdtemp(dir=parent, prefix=".tmp-site-")
    try:
        input_name, size = model_signature(onnx_bytes, building)
        shipped = None
        if model.startswith(PREFIX):
            from ..pretrained import example_files

            shipped = example_files(model[len(PREFIX) :])
        pngs = example_pngs(examples, direction, example_count, size[0], label_maps=shipped)
        metadata = site_metadata(onnx_bytes, name, input_name, size, len(pngs))
        write_site(building, onnx_bytes, pngs, metadata, dist)
        os.chmod(building, 0o755)  # mkdtemp's 0700 would hide the site from a web server running as another user
        if os.path.exists(output_dir):
            old = tempfile.mkdtemp(dir=parent, prefix=".old-site-")
            os.replace(output_dir, os.path.join(old, "site"))
            os.replace(building, output_dir)
            shutil.rmtree(old)
        else:
            os.replace(building, output_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return metadata


def serve_static(folder: str, isolated: bool = False, host: str = "127.0.0.1", port: int = 0):
    """A plain static file server of `folder` on a daemon thread (what any static host does), for local previews,
    the browser test and the benchmark; `isolated` adds ISOLATION_HEADERS. Call `.shutdown()` to stop it."""
    headers = ISOLATION_HEADERS if isolated else {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self):
            for name, value in headers.items():
                self.send_header(name, value)
            super().end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, port), functools.partial(Handler, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog_name("pix2pix_tf.site"), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="", type=user_path,
        help="an export folder holding generator.onnx (export.py --formats savedmodel,onnx), a .onnx or .keras "
        "file, or a train.py run folder (converted with the [onnx] extra)",
    )  # fmt: skip
    parser.add_argument(
        "--pretrained", default="",
        help="a generator shipped with pix2pix_tf, by name (cityscapes), instead of --model; its example label maps "
        "are the page's examples unless --examples is given",
    )  # fmt: skip
    parser.add_argument(
        "--output-dir", default="site", type=user_path, help="the folder to write the site into (default: %(default)s)"
    )
    parser.add_argument(
        "--examples", default="", type=user_path,
        help="a pix2pix-layout dataset folder (its val/ is used) or a folder of pair images whose label maps "
        "become the page's examples (default: synthetic street layouts)",
    )  # fmt: skip
    parser.add_argument(
        "--direction", default="BtoA", choices=("AtoB", "BtoA"),
        help="which half of an example pair is the label map: BtoA = RIGHT (Cityscapes) (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--example-count", type=int, default=8, help="examples to ship (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace a site this command wrote before")
    parser.add_argument(
        "--runtime-dir", default="", type=user_path,
        help=f"where {RUNTIME_PACKAGE} is (or goes, with --install-runtime) (default: "
        f"$XDG_CACHE_HOME or ~/.cache, then pix2pix_tf/{RUNTIME_PACKAGE}-VERSION)",
    )  # fmt: skip
    parser.add_argument(
        "--install-runtime", action="store_true",
        help=f"install the pinned {RUNTIME_PACKAGE} from npm (npm ci) into --runtime-dir; with --model or --pretrained, then build",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        runtime_dir = args.runtime_dir or default_runtime_dir()
        if args.pretrained and args.model:
            raise UsageError("--model and --pretrained both name the model: pass one of them")
        if args.pretrained:
            args.model = PREFIX + args.pretrained
        if args.install_runtime:
            log.info("%s %s installed in %s", RUNTIME_PACKAGE, runtime_version(), install_runtime(runtime_dir))
            if not args.model:
                return 0
        if not args.model:
            raise UsageError("--model is required (or --pretrained NAME): an export folder holding generator.onnx, a .onnx or .keras file, "
                             "or a train.py run folder")  # fmt: skip
        if args.example_count < 1:
            raise UsageError(f"--example-count {args.example_count}: ship at least 1 example")
        metadata = build_site(args.model, args.output_dir, args.examples, args.direction, args.example_count,
                              runtime_dir, args.overwrite)  # fmt: skip
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    size = "x".join(map(str, metadata["image_size"]))
    log.info("site written to %s (model %s, %s px, %d examples): serve the folder with any static file server, "
             "e.g. python -m http.server --directory %s", args.output_dir, metadata["source"], size,
             metadata["examples"], args.output_dir)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
