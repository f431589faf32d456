"""Interactive demo: paint a Cityscapes label map in the browser and let an exported generator paint the photo.

    python -m pix2pix_tf.demo --pretrained cityscapes     # the shipped generator and its example label maps
    python -m pix2pix_tf.demo --model exports/pix2pix/1
    python -m pix2pix_tf.demo --model exports/pix2pix --examples ../shared/datasets/cityscapes
    pix2pix-demo --model exports/pix2pix/1 --port 8080

Serves one static page (its own JS/CSS, works offline) and `POST /api/translate`, which runs the
SavedModel's `translate_encoded` signature on a PNG/JPEG body and answers with a PNG of the same size.
Nothing a user sends is written to disk. The test mode and resize mode are the export's
(`export.py --test-mode/--resize-mode`); `--test-mode`/`--resize-mode` here check them.

Safe to leave running: a connection holds no thread until it sends, a fixed pool of workers answers,
each request must arrive within `--request-timeout`, and a Host header naming another site (DNS
rebinding) is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import http.server
import io
import ipaddress
import json
import logging
import os
import queue
import re
import selectors
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from urllib.parse import urlsplit

import tensorflow as tf

from ..data.pairs import list_images, load_pair
from ..data.palette import CLASSES, label_map_png
from ..deploy.clients import SIGNATURE
from ..deploy.savedmodel import read_metadata
from ..errors import UsageError
from ..files import user_path
from ..inference import RESIZE_MODES, TEST_MODES, check_own_size, scale_mismatch
from .predict import latest_version_dir

# The page's palette: the 19 Cityscapes evaluation classes in their official colours, then black (unlabelled) as the eraser.
PALETTE = (*CLASSES, ("void", (0, 0, 0)))
MAX_BYTES = 2 * 1024 * 1024  # request body limit
MAX_SIDE = 1024  # decoded-size limit, checked from the header before decoding (a small PNG can inflate to GBs)
CANVAS_SIDE = 256  # the page's canvas; examples are resized to it
REQUEST_TIMEOUT_S = 30.0  # from accept to the last byte of the request: a trickling client is cut off after it
WORKERS = 8  # threads serving requests (model calls still run one at a time)
MAX_CONNECTIONS = 256  # open connections, waiting or served; more are answered 503 at once
EXAMPLE_NAME = re.compile(r"([0-9]{1,6})\.png")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
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


def check_image(data: bytes) -> tuple[int, int]:
    """(height, width) of a PNG/JPEG; raises RequestError unless each side is 1..MAX_SIDE px."""
    height, width = image_dimensions(data)
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise RequestError(
            400, f"the image is {width}x{height} px, over the demo's cap of {MAX_SIDE} px a side: each side must be "
            f"1..{MAX_SIDE} px (the page sends {CANVAS_SIDE}x{CANVAS_SIDE})",
        )  # fmt: skip
    return height, width


class Examples:
    """Label maps from pix2pix pair files (the RIGHT half under direction BtoA), as `side`-square PNGs."""

    def __init__(self, folder: str, direction: str = "BtoA", side: int = 256, label_maps: list[str] | None = None):
        """`folder` is a dataset root (its val/ split is used) or a folder of pair files itself; or, with
        `label_maps`, those label-map files alone (a pretrained model's examples)."""
        if label_maps is not None:
            self.files = list(label_maps)
        else:
            folder = os.path.normpath(folder)
            root, split = (folder, "val") if os.path.isdir(os.path.join(folder, "val")) else os.path.split(folder)
            self.files = list_images(root, split)
        self.pairs = label_maps is None
        self.direction = direction
        self.side = side
        self.png = functools.lru_cache(maxsize=64)(self._png)  # per instance: the cache dies with it

    def __len__(self) -> int:
        return len(self.files)

    def _png(self, index: int) -> bytes:
        """Example `index` as PNG bytes: the label half, resized (nearest) and snapped to the palette."""
        if self.pairs:
            label, _ = load_pair(tf.constant(self.files[index]), self.direction)
        else:
            label = tf.io.decode_png(tf.io.read_file(self.files[index]), channels=3)
        return label_map_png(label, self.side)


class SizeCapError(ValueError):
    """An image refused for its size; the message names the cap."""


def cap_refusal(message: str) -> str:
    """The sentence naming the cap in a signature's refusal (an InvalidArgumentError's message), else ""."""
    # TF wraps an assertion's text as "assertion failed: [the sentence] [Condition ...]" after node details.
    match = re.search(r"\[([^\[\]]*\bcap\b[^\[\]]*)\]", message) or re.search(r"^(.*\bcap\b.*)$", message, re.M)
    return match.group(1).strip() if match else ""


class Translator:
    """Runs the SavedModel's encoded-image signature, one request at a time.

    Args:
        model_dir: a SavedModel or the folder of its numbered versions.
        test_mode, resize_mode: what the caller expects the export to do ("" = whatever it was
            exported with); the export fixed them, so a mismatch is an error naming the re-export.
    """

    def __init__(self, model_dir: str, test_mode: str = "", resize_mode: str = ""):
        self.model_dir = latest_version_dir(model_dir)
        # What the page shows ("pix2pix/1"): the absolute path would tell every visitor the server's folders.
        parent, version = os.path.split(self.model_dir)
        self.name = "/".join(filter(None, (os.path.basename(parent), version)))
        self.modes = read_metadata(self.model_dir, test_mode, resize_mode)
        self._module = tf.saved_model.load(self.model_dir)  # the signature needs its variables kept alive
        if SIGNATURE not in self._module.signatures:
            found = ", ".join(self._module.signatures) or "none"
            raise UsageError(f"{self.model_dir} has no '{SIGNATURE}' signature (found: {found}): re-export the model")
        self._fn = self._module.signatures[SIGNATURE]
        # One call at a time: TF already spreads one call over all cores, and this bounds memory
        # when many requests arrive together.
        self._lock = threading.Lock()

    def check_size(self, height: int, width: int) -> None:
        """Raises SizeCapError when the export's own-size cap (export.py --max-pixels) refuses the image size."""
        if self.modes.get("resize_mode") == "own" and self.modes.get("max_pixels"):
            try:
                check_own_size(height, width, self.modes.get("size_multiple", 1), self.modes["max_pixels"])
            except UsageError as err:
                raise SizeCapError(str(err)) from None

    def __call__(self, image: bytes) -> bytes:
        """PNG bytes of the generated image, the size of `image`.

        Raises:
            SizeCapError: the signature refused the image's size.
            ValueError: the image does not decode.
        """
        with self._lock:
            try:
                return self._fn(image_bytes=tf.constant([image]))["image_bytes"].numpy()[0]
            except tf.errors.InvalidArgumentError as err:
                cap = cap_refusal(err.message)
                if cap:
                    raise SizeCapError(f"the model refused the image: {cap}") from None
                raise ValueError("the image could not be decoded") from None


def split_host(value: str, default_port: int) -> tuple[str, int]:
    """(name, port) of a Host header or an --allowed-host ("name", "name:port", "[::1]:port"), name lowercased.

    Raises:
        ValueError: `value` is not host[:port].
    """
    parts = urlsplit("//" + value)
    if not parts.hostname or "@" in parts.netloc or parts.path or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not host[:port]")
    return parts.hostname, parts.port or default_port  # .port raises ValueError on a bad port


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.x, ::1), which only this machine can reach."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class RequestTimeout(TimeoutError):
    """A request that did not arrive within the server's request timeout."""


class DeadlineReader(io.RawIOBase):
    """A socket's input that ends at a deadline (time.monotonic()), however slowly the bytes trickle in.

    Socket timeouts, and so http.server's `timeout`, are per call: a client sending a byte every few
    seconds never trips one, and a request line alone may be 64 KB. The standard library has no
    deadline for a whole read (sendall has one for a whole write), so each read waits at most what is left.
    """

    def __init__(self, sock: socket.socket, deadline: float, timeout_s: float):
        super().__init__()
        self._sock, self._deadline, self._timeout_s = sock, deadline, timeout_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)
            return self._sock.recv_into(buffer)
        except TimeoutError:
            raise RequestTimeout(
                f"the request did not arrive within {self._timeout_s:g} s (the demo's --request-timeout)"
            ) from None


class WaitingRoom:
    """Holds accepted connections until their first bytes arrive, then dispatches them; drops those that expire.

    Why not the standard library alone: socketserver gives each connection a thread as soon as it is
    accepted (ThreadingMixIn), and a ThreadPoolExecutor worker would likewise sit on it, so idle connections
    (a browser's speculative pre-connects, or a flood) would hold every worker. Here one waits in a selector.

    Args:
        dispatch: called as dispatch(sock, address) once `sock` is readable.
        drop: called with a socket whose deadline passed before it sent anything (or at close).
        name: the room's thread's name.
    """

    def __init__(self, dispatch, drop, name: str = "pix2pix-demo-waiting-room"):
        self._dispatch, self._drop = dispatch, drop
        self._selector = selectors.DefaultSelector()
        self._incoming: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting: dict[socket.socket, tuple] = {}  # sock -> (address, deadline); the room's thread only
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def admit(self, sock: socket.socket, address, deadline: float) -> None:
        self._incoming.put((sock, address, deadline))
        self._wake()

    def close(self) -> None:
        """Stops the room and drops every connection still in it."""
        self._stopping = True
        self._wake()
        self._thread.join()
        while not self._incoming.empty():
            self._drop(self._incoming.get()[0])
        for sock in self._waiting:
            self._drop(sock)
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"\0")
        except BlockingIOError:
            pass  # its buffer is full of wake-ups already

    def _run(self) -> None:
        while not self._stopping:
            deadlines = [deadline for _, deadline in self._waiting.values()]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self._selector.select(timeout):
                if key.fileobj is self._wake_read:
                    with contextlib.suppress(BlockingIOError):
                        while self._wake_read.recv(4096):
                            pass
                    continue
                self._selector.unregister(key.fileobj)
                address, _ = self._waiting.pop(key.fileobj)
                try:
                    self._dispatch(key.fileobj, address)
                except Exception:  # the room must outlive any one connection, or every later one would wait forever
                    log.exception("cannot serve %s", address)
                    self._drop(key.fileobj)
            while not self._incoming.empty():
                sock, address, deadline = self._incoming.get()
                self._waiting[sock] = (address, deadline)
                self._selector.register(sock, selectors.EVENT_READ)
            now = time.monotonic()
            for sock in [sock for sock, (_, deadline) in self._waiting.items() if deadline <= now]:
                self._selector.unregister(sock)
                del self._waiting[sock]
                self._drop(sock)


BUSY_BODY = json.dumps({"error": "the demo has too many open connections: try again in a moment"}).encode()


class DemoServer(http.server.HTTPServer):
    """The demo's HTTP server: a waiting room, a bounded worker pool and one deadline per request.

    A connection waits (without a thread) until it sends its first bytes, then a worker reads and answers
    it; the whole request must arrive within `request_timeout` of the accept, or the connection is cut.

    Args:
        address: (host, port); an IPv6 literal, or a name, binds in the address family it resolves to.
        translator: a Translator.
        examples: the example label maps, if any.
        request_timeout: seconds from a connection's accept to the last byte of its request.
        workers: threads answering requests (the model itself runs one call at a time).
        max_connections: open connections (waiting, queued or being answered); more get a 503 at once.
        allowed_hosts: further Host header names ("name" or "name:port") the page may be opened under.
    """

    # socketserver listens with a backlog of 5: in a burst, further connections' SYNs are dropped and
    # retried after 1 s, 3 s, ... however fast the server accepts.
    request_queue_size = socket.SOMAXCONN
    _waiting_room: WaitingRoom | None = None
    _pool: ThreadPoolExecutor | None = None

    def __init__(
        self,
        address: tuple[str, int],
        translator,
        examples: Examples | None = None,
        *,
        request_timeout: float = REQUEST_TIMEOUT_S,
        workers: int = WORKERS,
        max_connections: int = MAX_CONNECTIONS,
        allowed_hosts: tuple[str, ...] = (),
    ):
        self.translator = translator
        self.examples = examples
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        package = resources.files("pix2pix_tf.apps") / "demo_static"
        self.static = {name: (package / name).read_bytes() for name in ("index.html", "demo.js", "demo.css")}
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, float] = {}  # every open connection -> its deadline
        # socketserver binds AF_INET unless told otherwise: "::1" would not bind. Resolve first, as
        # `python -m http.server` does.
        host = address[0].strip("[]")  # "[::1]", as in a URL, is "::1"
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host or None, address[1], type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        self.address_family = family
        super().__init__(sockaddr, DemoHandler)
        port = self.server_address[1]
        self.allowed_hosts = {("localhost", port), (host.lower(), port)}
        self.allowed_hosts |= {split_host(extra, port) for extra in allowed_hosts}
        name = f"pix2pix-demo-{port}"  # the threads of a server, told apart by its port
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"{name}-worker")
        self._waiting_room = WaitingRoom(self._dispatch, self._drop, name=f"{name}-waiting-room")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def host_allowed(self, header: str | None) -> bool:
        """Whether a Host header names this server: the defence against DNS rebinding.

        A page on attacker.example whose name is re-pointed at 127.0.0.1 reaches this server with its own
        name in Host, so names must be localhost, --host or an --allowed-host, at this port. An IP literal
        cannot be re-pointed, so any one at this port passes (it is how a server on 0.0.0.0 is reached);
        browsers always send Host, so a request without it comes from no such page.
        """
        if header is None:
            return True
        try:
            name, port = split_host(header, 80)
        except ValueError:
            return False
        if (name, port) in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            return False
        return port == self.server_address[1]

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed: waiting, queued or being answered."""
        with self._lock:
            return len(self._connections)

    def deadline(self, request: socket.socket) -> float:
        with self._lock:
            return self._connections.get(request, 0.0)

    def process_request(self, request: socket.socket, client_address) -> None:
        """Runs on the accepting thread: the connection waits in the waiting room, or gets a 503 when full."""
        deadline = time.monotonic() + self.request_timeout
        with self._lock:
            admitted = len(self._connections) < self.max_connections
            if admitted:
                self._connections[request] = deadline
        if admitted:
            self._waiting_room.admit(request, client_address, deadline)
            return
        # Written by hand: http.server's error replies come from a handler, which first reads the request.
        head = "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
        try:
            request.setblocking(False)  # never block the accepting thread; a new connection's buffer takes it
            request.send(f"{head}Content-Length: {len(BUSY_BODY)}\r\n\r\n".encode() + BUSY_BODY)
            request.recv(1 << 16)  # what already came: closing on unread bytes would reset, losing the 503
        except OSError:
            pass
        self.shutdown_request(request)

    def _dispatch(self, request: socket.socket, client_address) -> None:
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: socket.socket, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._drop(request)

    def _drop(self, request: socket.socket) -> None:
        with self._lock:
            self._connections.pop(request, None)
        self.shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the client went away mid-request: nothing to fix here
            log.info("%s: connection ended: %s", client_address[0], error)
        else:
            log.exception("request from %s failed", client_address[0])

    def server_close(self) -> None:
        """Stops listening and ends every open connection, so no worker outlives the server by a deadline."""
        super().server_close()
        if self._waiting_room is not None:
            self._waiting_room.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)  # queued connections still run, and end at once (below)
        with self._lock:
            still_open = list(self._connections)
        for request in still_open:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its worker


class DemoHandler(http.server.BaseHTTPRequestHandler):
    """GET /, /static/*, /api/info, /api/examples/N.png; POST /api/translate. Errors answer JSON {"error": ...}."""

    server: DemoServer
    server_version = "pix2pix-demo"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket closes only once every file made from it is closed
        deadline = self.server.deadline(self.request)
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, deadline, self.server.request_timeout))
        self._body_read = False

    def end_headers(self) -> None:
        # Writes get their own time (sendall's timeout bounds the whole write): a client that stops reading
        # is cut off after it, while a request that waited its turn for the model still gets its answer.
        self.connection.settimeout(self.server.request_timeout)
        super().end_headers()

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route) -> None:
        try:
            host = self.headers.get("Host")
            if not self.server.host_allowed(host):
                raise RequestError(
                    421, f"Host {host!r} is not this server's address: open {self.server.url} (a page under another "
                    "name could be a DNS-rebinding attack; --allowed-host NAME allows a name you use)",
                )  # fmt: skip
            route(urlsplit(self.path).path)
        except RequestError as err:
            if self.command == "POST" and not self._body_read:
                self._discard()
            self._json(err.status, {"error": str(err)})

    def _get(self, path: str) -> None:
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

    def _post(self, path: str) -> None:
        if path != "/api/translate":
            raise RequestError(404, "POST only to /api/translate")
        body = self._read_body()
        height, width = check_image(body)
        try:
            self.server.translator.check_size(height, width)
            result = self.server.translator(body)
        except SizeCapError as err:
            raise RequestError(400, str(err)) from None
        except ValueError as err:  # a header that parsed, pixels that do not decode
            raise RequestError(400, f"{err}: send a valid PNG or JPEG") from None
        except Exception:
            log.exception("translation failed")
            raise RequestError(500, "the model failed on this image; see the server log") from None
        self._send(200, result, "image/png")

    def _content_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError(411, "Content-Length is required") from None

    def _read_body(self) -> bytes:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in ("image/png", "image/jpeg", "application/octet-stream"):
            raise RequestError(
                415, f"Content-Type {content_type or 'none'} is not supported: send image/png or image/jpeg"
            )
        length = self._content_length()
        if length > MAX_BYTES:
            raise RequestError(
                413, f"the image is {length} bytes, over the demo's cap of {MAX_BYTES} bytes (2 MB): send a smaller one"
            )
        if length <= 0:
            raise RequestError(400, "empty body: send the image bytes")
        try:
            body = self.rfile.read(length)
        except TimeoutError as err:
            self._body_read = True  # the rest will not come in time either
            raise RequestError(408, str(err)) from None
        self._body_read = True
        if len(body) != length:
            raise RequestError(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _discard(self) -> None:
        """Drains a refused body, so the client reads our error instead of a connection reset."""
        self.close_connection = True
        try:
            length = self._content_length()
        except RequestError:
            return
        if length > 8 * MAX_BYTES:
            return  # not worth draining: close and let the client cope
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        except TimeoutError:
            pass  # the error still goes out

    def _info(self) -> dict:
        translator = self.server.translator
        return {
            "palette": [{"name": name, "rgb": list(rgb)} for name, rgb in PALETTE],
            "examples": len(self.server.examples or ()),
            "model": translator.name,
            "test_mode": translator.modes.get("test_mode", ""),
            "resize_mode": translator.modes.get("resize_mode", ""),
            "max_bytes": MAX_BYTES,
            "canvas": CANVAS_SIDE,
        }

    def _example(self, name: str) -> bytes:
        examples = self.server.examples
        if not examples:
            raise RequestError(404, "no examples: start the demo with --examples DIR")
        match = EXAMPLE_NAME.fullmatch(name)
        index = int(match.group(1)) if match else len(examples)
        if index >= len(examples):
            raise RequestError(
                404, f"no such example: {name[:40]!r}; there are {len(examples)}, 0.png to {len(examples) - 1}.png"
            )
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


def listen_error(host: str, port: int, err: OSError) -> str:
    """The one-line reason the demo cannot listen on host:port, with the way out."""
    where = f"cannot listen on {f'[{host}]' if ':' in host else host}:{port}: {err.strerror or err}"
    if err.errno == errno.EADDRINUSE:
        return f"{where}; pick another --port (0 picks a free one)"
    if err.errno == errno.EACCES:
        return f"{where}; ports below 1024 need privileges: pick --port 1024 or above (0 picks a free one)"
    if isinstance(err, socket.gaierror) or err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return f"{where}; --host must be an address of this machine (127.0.0.1, ::1, 0.0.0.0 for all) or its name"
    return where


def pretrained_export(name: str) -> str:
    """A SavedModel of the shipped generator `name`, exported (squash mode) into the user's cache the first time.

    The folder is keyed by the weights' SHA-256, so a newer shipped model is exported afresh.
    """
    from ..deploy.savedmodel import export_saved_model
    from ..pretrained import load_generator, read_manifest

    manifest, _ = read_manifest(name, "generator")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    base = os.path.join(cache, "pix2pix_tf", "pretrained", f"{manifest['name']}-{manifest['sha256'][:12]}")
    model_dir = os.path.join(base, "pix2pix", "1")
    if not os.path.isfile(os.path.join(model_dir, "saved_model.pb")):
        log.info("exporting the pretrained generator %r to %s (once)", manifest["name"], model_dir)
        # Squash: the shipped models are trained below the page's 256 px (inference.scale_mismatch).
        export_saved_model(load_generator(name).generator, base, "pix2pix", 1, overwrite=True, resize_mode="squash")
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pix2pix-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        default="",
        type=user_path,
        help="an exported SavedModel folder (or its parent holding numbered versions)",
    )
    parser.add_argument(
        "--pretrained", default="",
        help="a generator shipped with pix2pix_tf, by name (cityscapes), instead of --model: exported once into "
        "the user's cache; its example label maps are the page's examples unless --examples is given",
    )  # fmt: skip
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
        "--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
        help="a further name the page may be opened under (repeatable); the Host header must otherwise be "
        "localhost, --host or an IP address, at --port: a page under any other name is refused (DNS rebinding)",
    )  # fmt: skip
    parser.add_argument(
        "--request-timeout", type=float, default=REQUEST_TIMEOUT_S, metavar="SECONDS",
        help="time from a connection's opening to the last byte of its request; slower clients are cut off "
        "(default: %(default)g)",
    )  # fmt: skip
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
        if not 0 < args.request_timeout <= 86400:  # also refuses nan and inf, which sockets cannot wait for
            raise UsageError(f"--request-timeout {args.request_timeout:g} is not a duration: use 0 < seconds <= 86400")
        for host in args.allowed_host:
            try:
                split_host(host, args.port)
            except ValueError:
                raise UsageError(f"--allowed-host {host} is not NAME or NAME:PORT: e.g. mybox.lan:8000") from None
        if args.examples and not os.path.isdir(args.examples):
            raise UsageError(f"--examples {args.examples} is not a folder: pass a dataset folder holding val/")
        if bool(args.model) == bool(args.pretrained):
            raise UsageError("pass --model (an exported SavedModel) or --pretrained NAME (a shipped generator), one of them")
        examples = Examples(args.examples, args.direction, CANVAS_SIDE) if args.examples else None
        if args.pretrained:
            from ..pretrained import example_files

            args.model = pretrained_export(args.pretrained)
            if examples is None:
                examples = Examples("", side=CANVAS_SIDE, label_maps=example_files(args.pretrained))
        translator = Translator(args.model, args.test_mode, args.resize_mode)
        server = DemoServer(
            (args.host, args.port), translator, examples,
            request_timeout=args.request_timeout, allowed_hosts=tuple(args.allowed_host),
        )  # fmt: skip
    except UsageError as err:
        parser.error(str(err))  # one line, exit code 2
    except OSError as err:
        parser.error(listen_error(args.host, args.port, err))
    if translator.modes["resize_mode"] == "own":
        trained = translator.modes.get("image_size") or (CANVAS_SIDE, CANVAS_SIDE)
        message = scale_mismatch(CANVAS_SIDE, CANVAS_SIDE, tuple(trained), "the page's label map")
        if message:
            log.warning("%s: re-export with --resize-mode squash for this page", message)
    if not is_loopback(server.server_address[0]):
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
