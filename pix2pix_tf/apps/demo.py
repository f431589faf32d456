"""Interactive demo: paint a Cityscapes label map in the browser and let an exported generator paint the photo.

    python -m pix2pix_tf.demo --model exports/pix2pix/1
    python -m pix2pix_tf.demo --model exports/pix2pix --examples ../shared/datasets/cityscapes
    pix2pix-demo --model exports/pix2pix/1 --port 8080

Serves one static page (its own JS/CSS, works offline) and `POST /api/translate`, which runs the
SavedModel's `translate_encoded` signature on a PNG/JPEG body and answers with a PNG of the same size.
Nothing a user sends is written to disk. The test mode and resize mode are the export's
(`export.py --test-mode/--resize-mode`); `--test-mode`/`--resize-mode` here check them.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import logging
import os
import struct
import sys
import threading
from importlib import resources
from urllib.parse import urlsplit

import tensorflow as tf

from ..data.pairs import list_images, load_pair
from ..data.palette import CLASSES, snap_to_palette
from ..deploy.clients import SIGNATURE
from ..deploy.savedmodel import read_metadata
from ..errors import UsageError
from ..files import user_path
from ..inference import RESIZE_MODES, TEST_MODES, scale_mismatch
from .predict import latest_version_dir

# The page's palette: the 19 Cityscapes evaluation classes in their official colours, then black (unlabelled) as the eraser.
PALETTE = (*CLASSES, ("void", (0, 0, 0)))
MAX_BYTES = 2 * 1024 * 1024  # request body limit
MAX_SIDE = 1024  # decoded-size limit, checked from the header before decoding (a small PNG can inflate to GBs)
CANVAS_SIDE = 256  # the page's canvas; examples are resized to it
READ_TIMEOUT_S = 30  # a stalled client releases its thread after this long
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# The page may load nothing from elsewhere: it must work offline, and a CDN would also see the user.
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'"

log = logging.getLogger("pix2pix_tf.demo")


class RequestError(Exception):
    """A bad request; `status` is the HTTP code, the message goes back to the client as JSON."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def image_dimensions(data: bytes) -> tuple[int, int]:
    """(height, width) of a PNG or JPEG read from its header, without decoding the pixels.

    Raises:
        RequestError: 400 when the bytes are neither PNG nor JPEG or the header is broken.
    """
    if data.startswith(PNG_SIGNATURE):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise RequestError(400, "broken PNG: no IHDR header")
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    if data.startswith(JPEG_SIGNATURE):
        try:
            height, width, _ = tf.io.extract_jpeg_shape(data).numpy()
        except tf.errors.InvalidArgumentError:
            raise RequestError(400, "broken JPEG: its header cannot be read") from None
        return int(height), int(width)
    raise RequestError(400, "the body is not a PNG or JPEG image: send the canvas as image/png")


def check_image(data: bytes) -> None:
    """Raises RequestError unless `data` is a PNG/JPEG of 1..MAX_SIDE px a side."""
    height, width = image_dimensions(data)
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise RequestError(
            400, f"image is {width}x{height}: each side must be 1..{MAX_SIDE} px (the page sends 256x256)"
        )


class Examples:
    """Label maps from pix2pix pair files (the RIGHT half under direction BtoA), as `side`-square PNGs."""

    def __init__(self, folder: str, direction: str = "BtoA", side: int = 256):
        """`folder` is a dataset root (its val/ split is used) or a folder of pair files itself."""
        folder = os.path.normpath(folder)
        root, split = (folder, "val") if os.path.isdir(os.path.join(folder, "val")) else os.path.split(folder)
        self.files = list_images(root, split)
        self.direction = direction
        self.side = side
        self.png = functools.lru_cache(maxsize=64)(self._png)  # per instance: the cache dies with it

    def __len__(self) -> int:
        return len(self.files)

    def _png(self, index: int) -> bytes:
        """Example `index` as PNG bytes: the label half, resized (nearest) and snapped to the palette."""
        label, _ = load_pair(tf.constant(self.files[index]), self.direction)
        label = tf.image.resize(label, (self.side, self.side), method="nearest")  # no blended class colours
        return tf.io.encode_png(snap_to_palette(label.numpy())).numpy()


class Translator:
    """Runs the SavedModel's encoded-image signature, one request at a time.

    Args:
        model_dir: a SavedModel or the folder of its numbered versions.
        test_mode, resize_mode: what the caller expects the export to do ("" = whatever it was
            exported with); the export fixed them, so a mismatch is an error naming the re-export.
    """

    def __init__(self, model_dir: str, test_mode: str = "", resize_mode: str = ""):
        self.model_dir = latest_version_dir(model_dir)
        self.modes = read_metadata(self.model_dir, test_mode, resize_mode)
        self._module = tf.saved_model.load(self.model_dir)  # the signature needs its variables kept alive
        if SIGNATURE not in self._module.signatures:
            found = ", ".join(self._module.signatures) or "none"
            raise UsageError(f"{self.model_dir} has no '{SIGNATURE}' signature (found: {found}): re-export the model")
        self._fn = self._module.signatures[SIGNATURE]
        # One call at a time: TF already spreads one call over all cores, and this bounds memory
        # when many requests arrive together.
        self._lock = threading.Lock()

    def __call__(self, image: bytes) -> bytes:
        """PNG bytes of the generated image, the size of `image`.

        Raises:
            ValueError: the image does not decode.
        """
        with self._lock:
            try:
                return self._fn(image_bytes=tf.constant([image]))["image_bytes"].numpy()[0]
            except tf.errors.InvalidArgumentError:
                raise ValueError("the image could not be decoded") from None


class DemoServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server holding the translator, the examples and the page's files."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], translator, examples: Examples | None = None):
        self.translator = translator
        self.examples = examples
        package = resources.files("pix2pix_tf.apps") / "demo_static"
        self.static = {name: (package / name).read_bytes() for name in ("index.html", "demo.js", "demo.css")}
        super().__init__(address, DemoHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class DemoHandler(http.server.BaseHTTPRequestHandler):
    """GET /, /static/*, /api/info, /api/examples/N.png; POST /api/translate. Errors answer JSON {"error": ...}."""

    server: DemoServer
    timeout = READ_TIMEOUT_S
    server_version = "pix2pix-demo"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                return self._send(200, self.server.static["index.html"], STATIC_TYPES[".html"])
            if path.startswith("/static/") and path[len("/static/") :] in self.server.static:
                name = path[len("/static/") :]
                return self._send(200, self.server.static[name], STATIC_TYPES[os.path.splitext(name)[1]])
            if path == "/api/info":
                return self._json(200, self._info())
            if path.startswith("/api/examples/"):
                return self._send(200, self._example(path[len("/api/examples/") :]), "image/png")
            raise RequestError(404, f"no such page: {path}")
        except RequestError as err:
            self._json(err.status, {"error": str(err)})

    def do_POST(self) -> None:
        try:
            if urlsplit(self.path).path != "/api/translate":
                raise RequestError(404, "POST only to /api/translate")
            body = self._read_body()
            check_image(body)
            try:
                result = self.server.translator(body)
            except ValueError as err:  # a header that parsed, pixels that do not decode
                raise RequestError(400, f"{err}: send a valid PNG or JPEG") from None
            except Exception:
                log.exception("translation failed")
                raise RequestError(500, "the model failed on this image; see the server log") from None
            self._send(200, result, "image/png")
        except RequestError as err:
            self._json(err.status, {"error": str(err)})

    def _read_body(self) -> bytes:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in ("image/png", "image/jpeg", "application/octet-stream"):
            raise RequestError(
                415, f"Content-Type {content_type or 'none'} is not supported: send image/png or image/jpeg"
            )
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError(411, "Content-Length is required") from None
        if length > MAX_BYTES:
            self._discard(length)
            raise RequestError(413, f"the image is {length} bytes: the limit is {MAX_BYTES} bytes (2 MB)")
        if length <= 0:
            raise RequestError(400, "empty body: send the image bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise RequestError(408, f"the body did not arrive within {READ_TIMEOUT_S} s") from None
        if len(body) != length:
            raise RequestError(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _discard(self, length: int) -> None:
        """Drains a refused body, so the client reads our 413 instead of a connection reset."""
        self.close_connection = True
        if length > 8 * MAX_BYTES:
            return  # not worth draining: close and let the client cope
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        except TimeoutError:
            pass  # the 413 still goes out

    def _info(self) -> dict:
        return {
            "palette": [{"name": name, "rgb": list(rgb)} for name, rgb in PALETTE],
            "examples": len(self.server.examples or ()),
            "model": getattr(self.server.translator, "model_dir", ""),
            "test_mode": getattr(self.server.translator, "modes", {}).get("test_mode", ""),
            "resize_mode": getattr(self.server.translator, "modes", {}).get("resize_mode", ""),
            "max_bytes": MAX_BYTES,
            "canvas": CANVAS_SIDE,
        }

    def _example(self, name: str) -> bytes:
        examples = self.server.examples
        if not examples:
            raise RequestError(404, "no examples: start the demo with --examples DIR")
        index = name.removesuffix(".png")
        if not index.isdigit():
            raise RequestError(404, f"no such example: {name}")
        index = int(index) % len(examples)
        try:
            return examples.png(index)
        except tf.errors.OpError:
            log.exception("example %s", examples.files[index])
            raise RequestError(500, f"example {index} cannot be read; see the server log") from None

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.info("%s %s", self.address_string(), format % args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pix2pix-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        required=True,
        type=user_path,
        help="an exported SavedModel folder (or its parent holding numbered versions)",
    )
    parser.add_argument(
        "--examples",
        default="",
        type=user_path,
        help="a pix2pix-layout dataset folder (its val/ is used) or a folder of pair images",
    )
    parser.add_argument(
        "--direction",
        default="BtoA",
        choices=("AtoB", "BtoA"),
        help="which half of an example pair is the label map: BtoA = RIGHT (Cityscapes) (default: %(default)s)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument(
        "--test-mode", default="", choices=TEST_MODES,
        help="expect an export in this test mode (eval, or paper: dropout on, per-image statistics); export.py "
        "fixes it, so a different one is an error (default: the export's)",
    )  # fmt: skip
    parser.add_argument(
        "--resize-mode", default="", choices=RESIZE_MODES,
        help="expect an export translating at the image's own size (own) or at the training size (squash); "
        "fixed by export.py like --test-mode (default: the export's)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if not 0 <= args.port <= 65535:
            raise UsageError(f"--port {args.port} is not a port: use 0..65535")
        if args.examples and not os.path.isdir(args.examples):
            raise UsageError(f"--examples {args.examples} is not a folder: pass a dataset folder holding val/")
        examples = Examples(args.examples, args.direction, CANVAS_SIDE) if args.examples else None
        translator = Translator(args.model, args.test_mode, args.resize_mode)
        server = DemoServer((args.host, args.port), translator, examples)
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    except OSError as err:
        parser.error(f"cannot listen on {args.host}:{args.port}: {err.strerror}; pick another --port")
    if translator.modes["resize_mode"] == "own":
        trained = translator.modes.get("image_size") or (CANVAS_SIDE, CANVAS_SIDE)
        message = scale_mismatch(CANVAS_SIDE, CANVAS_SIDE, tuple(trained), "the page's label map")
        if message:
            log.warning("%s: re-export with --resize-mode squash for this page", message)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this address can use the model", args.host)
    log.info(
        "model %s (--test-mode %s, --resize-mode %s), %d examples: open %s (Ctrl+C stops)", translator.model_dir,
        translator.modes["test_mode"], translator.modes["resize_mode"], len(examples or ()), server.url,
    )  # fmt: skip
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
