"""The demo server: endpoint validation, concurrency, examples, and the page driven in a real headless chromium."""

from __future__ import annotations

import base64
import contextlib
import errno
import http.client
import json
import os
import pathlib
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from pix2pix_tf.apps import demo
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.data.pairs import to_float, to_uint8
from pix2pix_tf.data.palette import snap_to_palette
from pix2pix_tf.deploy.clients import SIGNATURE
from pix2pix_tf.deploy.savedmodel import export_saved_model
from pix2pix_tf.inference import inference_generator, translate_own_size

MODEL_SIZE = (32, 32)
CHROMIUM = os.environ.get("PIX2PIX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers often give /dev/shm 64 MB, too little for chromium
]  # fmt: skip


@pytest.fixture(scope="module")
def generator():
    """A tiny untrained generator; an untrained net outputs ~0 everywhere (a flat grey), so its last layer is
    scaled to spread the output over the colour range: "the result is not blank" is then something a broken
    page could fail."""
    generator = build_generator(MODEL_SIZE, filters=4, depth=5)
    kernel = generator.get_layer("output_deconv").kernel
    kernel.assign(kernel * 300.0)
    return generator


@pytest.fixture(scope="module")
def model_dir(generator, tmp_path_factory) -> str:
    """A real export (TF Serving layout) of the tiny generator: EXPORT_BASE/pix2pix/1."""
    return export_saved_model(generator, str(tmp_path_factory.mktemp("exports")))


@pytest.fixture(scope="module")
def paper_model_dir(generator, tmp_path_factory) -> str:
    """The same generator exported in the paper's test mode."""
    return export_saved_model(generator, str(tmp_path_factory.mktemp("paper")), test_mode="paper")


@pytest.fixture(scope="module")
def server(model_dir, pair_dir):
    with _serving(("127.0.0.1", 0), demo.Translator(model_dir), demo.Examples(pair_dir)) as srv:
        yield srv


@contextlib.contextmanager
def _serving(address, translator, examples=None, **options):
    srv = demo.DemoServer(address, translator, examples, **options)
    # serve_forever checks for shutdown() every poll_interval (default 0.5 s): a short one ends tests sooner.
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def _raw(server, data: bytes) -> tuple[int, bytes]:
    """Sends `data` as it is (no client-side checks or encoding) and reads the answer to the end: (status, body)."""
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/"), answer[:200]  # an answer, not a dropped connection
    return int(head.split()[1]), body


def _request(server, method: str, path: str, body: bytes = b"", content_type: str = "image/png"):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers={"Content-Type": content_type} if body else {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def _png(height: int, width: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


def _decode(data: bytes) -> np.ndarray:
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def test_translate_returns_the_models_png_of_the_same_size(server, model_dir):
    image = _png(24, 40)
    status, content_type, body = _request(server, "POST", "/api/translate", image)
    assert (status, content_type) == (200, "image/png")
    assert _decode(body).shape == (24, 40, 3)
    direct = tf.saved_model.load(model_dir).signatures[SIGNATURE](image_bytes=tf.constant([image]))
    np.testing.assert_array_equal(_decode(body), _decode(direct["image_bytes"].numpy()[0]))
    jpeg = tf.io.encode_jpeg(_decode(image)).numpy()
    status, _, body = _request(server, "POST", "/api/translate", jpeg, "image/jpeg")
    assert status == 200 and _decode(body).shape == (24, 40, 3)


@pytest.mark.parametrize(
    "body, content_type, status, message",
    [
        (b"definitely not an image", "image/png", 400, "not a PNG or JPEG"),
        (_png(16, 16)[:60], "image/png", 400, "could not be decoded"),  # valid header, truncated pixels
        (b"\xff\xd8\xff\xe0 broken", "image/jpeg", 400, "broken JPEG"),
        (_png(1, demo.MAX_SIDE + 1), "image/png", 400, "over the demo's cap of 1024 px a side"),
        (_png(16, 16), "text/plain", 415, "send image/png"),
    ],
)
def test_bad_requests_get_a_json_error(server, body, content_type, status, message):
    got_status, got_type, got_body = _request(server, "POST", "/api/translate", body, content_type)
    assert (got_status, got_type) == (status, "application/json")
    assert message in json.loads(got_body)["error"]


def test_too_big_is_413_and_the_server_keeps_serving(server):
    status, _, body = _request(server, "POST", "/api/translate", b"\x89PNG" + bytes(demo.MAX_BYTES))
    assert status == 413 and "over the demo's cap of 2097152 bytes" in json.loads(body)["error"]
    assert _request(server, "POST", "/api/translate", _png(8, 8))[0] == 200
    assert _request(server, "GET", "/nope")[0] == 404


def test_concurrent_requests_each_get_their_own_result(server):
    images = [_png(8 + 4 * i, 40 - 4 * i, seed=i) for i in range(8)]
    sequential = [_request(server, "POST", "/api/translate", image)[2] for image in images]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda image: _request(server, "POST", "/api/translate", image), images))
    for image, expected, (status, _, body) in zip(images, sequential, concurrent):
        assert status == 200
        assert _decode(body).shape == _decode(image).shape
        np.testing.assert_array_equal(_decode(body), _decode(expected))


def test_info_lists_the_cityscapes_palette(server):
    status, content_type, body = _request(server, "GET", "/api/info")
    info = json.loads(body)
    assert (status, content_type, info["examples"], info["canvas"]) == (200, "application/json", 4, 256)
    assert (info["test_mode"], info["resize_mode"]) == ("eval", "own")  # the export's defaults
    assert info["model"] == "pix2pix/1"  # the export's name and version, not where it lives on the server
    assert os.path.dirname(server.translator.model_dir).encode() not in body
    colours = {entry["name"]: tuple(entry["rgb"]) for entry in info["palette"]}
    assert len(colours) == 20 and colours["road"] == (128, 64, 128) and colours["traffic sign"] == (220, 220, 0)
    assert colours["bicycle"] == (119, 11, 32) and colours["void"] == (0, 0, 0)


def test_example_is_the_right_half_resized_and_snapped(server, pair_dir):
    status, content_type, body = _request(server, "GET", "/api/examples/1.png")
    assert (status, content_type) == (200, "image/png")
    pair = _decode(tf.io.read_file(os.path.join(pair_dir, "val", "00002.jpg")).numpy())  # [64, 128, 3]
    label = np.repeat(np.repeat(pair[:, 64:], 4, axis=0), 4, axis=1)  # the RIGHT half, nearest 64 -> 256
    np.testing.assert_array_equal(_decode(body), snap_to_palette(label))
    assert _request(server, "GET", "/api/examples/x.png")[0] == 404


@pytest.mark.parametrize(
    "name",
    [b"\xb2.png", b"%C2%B2.png", b"\xd9\xa1.png", b"1234567.png", b"9" * 5000 + b".png", b"4.png", b"-1.png", b"1"],
    ids=["superscript-two", "superscript-two-quoted", "arabic-indic-one", "seven-digits", "5000-digits",
         "past-the-end", "negative", "no-suffix"],
)  # fmt: skip
def test_example_names_other_than_ascii_digits_in_range_are_404(server, name):
    assert "²".isdigit() and "\u0661".isdigit()  # what str.isdigit() let through to int()
    status, body = _raw(server, b"GET /api/examples/" + name + b" HTTP/1.0\r\n\r\n")
    assert status == 404 and "no such example" in json.loads(body)["error"], body
    assert "0.png to 3.png" in json.loads(body)["error"]


def test_info_and_example_answer_under_ipv6(server, model_dir, capsys):
    with _serving(("::1", 0), server.translator, server.examples) as v6:
        assert v6.url == f"http://[::1]:{v6.server_address[1]}/"
        status, body = _raw(v6, b"GET /api/info HTTP/1.0\r\nHost: [::1]:%d\r\n\r\n" % v6.server_address[1])
        assert status == 200 and json.loads(body)["examples"] == 4
        assert _request(v6, "GET", "/api/examples/0.png")[:2] == (200, "image/png")
    # A port in use on ::1 is named as such (before, every bind error on ::1 said "pick another --port").
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            demo.main(["--model", model_dir, "--host", "::1", "--port", str(port)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"cannot listen on [::1]:{port}" in err and "pick another --port" in err, err
    # An address this machine does not have is named as the problem, not the port.
    with pytest.raises(OSError) as bind_error:
        socket.create_server(("192.0.2.1", 0))  # TEST-NET-1: never a local address
    assert bind_error.value.errno == errno.EADDRNOTAVAIL
    message = demo.listen_error("192.0.2.1", 8000, bind_error.value)
    assert "--host must be an address of this machine" in message and "--port" not in message


def _trickle(server, head: bytes, drip: bytes, every_s: float = 0.5) -> tuple[float, bytes]:
    """Sends `head` at once, then `drip` a byte every `every_s` until the server closes the connection.

    Returns the seconds from connecting until the server closed, and what it answered (b"" when nothing).
    """
    started = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=10) as sock:
        sock.sendall(head)
        for byte in drip:  # bounded: len(drip) * every_s
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset: the server closed while we sent
                return time.monotonic() - started, b""
            if select.select([sock], [], [], every_s)[0]:
                closed_at, answer = time.monotonic() - started, b""
                with contextlib.suppress(OSError):
                    while chunk := sock.recv(1 << 16):
                        answer += chunk
                return closed_at, answer
    return float("inf"), b""


def test_a_trickling_client_is_cut_off_at_the_request_deadline(server):
    request = b"GET /api/info HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    with _serving(("127.0.0.1", 0), server.translator, request_timeout=1.5) as srv:
        # Each byte arrives well within any per-read timeout; the whole request would take 22 s.
        closed_at, answer = _trickle(srv, b"", request)
        assert 1.4 <= closed_at <= 3.0 and answer == b"", (closed_at, answer)
        # A trickling body: the headers came in time, the image does not; the answer says why.
        head = b"POST /api/translate HTTP/1.0\r\nContent-Type: image/png\r\nContent-Length: 100\r\n\r\n"
        closed_at, answer = _trickle(srv, head, bytes(20))
        assert 1.4 <= closed_at <= 3.0, closed_at
        assert answer.startswith(b"HTTP/1.0 408") and b"did not arrive within 1.5 s" in answer, answer
        assert _request(srv, "GET", "/api/info")[0] == 200


def _wait_until(condition, limit_s: float = 5.0) -> None:
    """Polls `condition` until it holds; fails after `limit_s`."""
    for _ in range(int(limit_s / 0.02)):
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"still not true after {limit_s} s")


def _server_threads(server) -> int:
    prefix = f"pix2pix-demo-{server.server_address[1]}-"
    return sum(thread.name.startswith(prefix) for thread in threading.enumerate())


def test_a_burst_of_connections_leaves_threads_bounded_and_the_server_answering(server):
    workers, timeout_s = 4, 2.0
    before = threading.active_count()
    with _serving(("127.0.0.1", 0), server.translator, workers=workers, request_timeout=timeout_s) as srv:
        started = time.monotonic()
        idle = [socket.create_connection(srv.server_address[:2], timeout=10) for _ in range(50)]
        partial = [socket.create_connection(srv.server_address[:2], timeout=10) for _ in range(3)]
        try:
            for sock in partial:  # fewer than the workers: each holds one until the deadline
                sock.sendall(b"GET /api/info HT")
            _wait_until(lambda: srv.open_connections == 53)
            status, _, body = _request(srv, "GET", "/api/info")  # 50 idle connections hold no worker
            assert status == 200 and json.loads(body)["canvas"] == 256
            assert time.monotonic() - started < timeout_s  # answered during the burst, not after it
            assert _server_threads(srv) <= workers + 1  # the workers and the waiting room
            assert threading.active_count() - before <= workers + 2  # and serve_forever's
            with ThreadPoolExecutor(20) as pool:  # 20 at once, while the burst still stands
                statuses = list(pool.map(lambda _: _request(srv, "GET", "/api/info")[0], range(20)))
            assert statuses == [200] * 20 and _server_threads(srv) <= workers + 1
            for sock in idle + partial:  # the deadline closes every one of them
                assert sock.recv(1) == b""
            assert time.monotonic() - started < timeout_s + 2
        finally:
            for sock in idle + partial:
                sock.close()
        assert _request(srv, "GET", "/api/info")[0] == 200


def test_connections_past_the_limit_get_503_at_once(server):
    with _serving(("127.0.0.1", 0), server.translator, max_connections=3, request_timeout=1.0) as srv:
        idle = [socket.create_connection(srv.server_address[:2], timeout=10) for _ in range(3)]
        try:
            _wait_until(lambda: srv.open_connections == 3)
            with socket.create_connection(srv.server_address[:2], timeout=10) as sock:
                answer = sock.recv(1 << 16)  # without sending anything: the 503 comes at once
            assert answer.startswith(b"HTTP/1.0 503"), answer
            assert b"too many open connections" in answer.partition(b"\r\n\r\n")[2]
            for sock in idle:
                assert sock.recv(1) == b""  # dropped at the deadline, freeing their places
        finally:
            for sock in idle:
                sock.close()
        assert _request(srv, "GET", "/api/info")[0] == 200


@pytest.mark.parametrize(
    "host, status",
    [
        ("127.0.0.1:{port}", 200), ("localhost:{port}", 200), ("LocalHost:{port}", 200), ("[::1]:{port}", 200),
        ("10.1.2.3:{port}", 200),  # an IP literal cannot be re-pointed by DNS (how 0.0.0.0 is reached)
        ("mybox.lan:{port}", 200), ("proxy.lan:9000", 200),  # --allowed-host mybox.lan proxy.lan:9000
        ("attacker.example:{port}", 421), ("127.0.0.1.nip.io:{port}", 421), ("localhost", 421),
        ("localhost:1", 421), ("proxy.lan:{port}", 421), ("user@localhost:{port}", 421), ("", 421), (None, 200),
    ],
)  # fmt: skip
def test_host_header_must_name_this_server(server, host, status):
    options = {"allowed_hosts": ("mybox.lan", "proxy.lan:9000")}
    with _serving(("127.0.0.1", 0), server.translator, **options) as srv:
        header = b"" if host is None else b"Host: %s\r\n" % host.format(port=srv.server_address[1]).encode()
        got, body = _raw(srv, b"GET /api/info HTTP/1.0\r\n" + header + b"\r\n")
        assert got == status, body
        if status == 421:
            assert "DNS-rebinding" in json.loads(body)["error"] and srv.url in json.loads(body)["error"]
        # A refused POST still reads the body, so the client gets the 421 rather than a reset.
        post = b"POST /api/translate HTTP/1.0\r\nContent-Type: image/png\r\nContent-Length: 4000\r\n"
        got, body = _raw(srv, post + header + b"\r\n" + bytes(4000))
        assert got == (status if status == 421 else 400), body


def test_bad_host_and_timeout_flags_are_usage_errors(capsys):
    for argv, message in [
        (["--allowed-host", "a/b"], "--allowed-host a/b is not NAME or NAME:PORT"),
        (["--allowed-host", "box:99999"], "--allowed-host box:99999 is not NAME or NAME:PORT"),
        (["--request-timeout", "0"], "--request-timeout 0 is not a duration"),
        (["--request-timeout", "inf"], "--request-timeout inf is not a duration"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            demo.main(["--model", "never-loaded"] + argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err, err


@pytest.fixture(scope="module")
def capped_model_dir(generator, tmp_path_factory) -> str:
    """The generator exported with an own-size cap of 2048 pixels (a 32x64 image, or 45x45)."""
    return export_saved_model(generator, str(tmp_path_factory.mktemp("capped")), max_pixels=32 * 64)


def test_a_size_cap_refusal_names_the_cap(capped_model_dir):
    translator = demo.Translator(capped_model_dir)
    with _serving(("127.0.0.1", 0), translator) as srv:
        assert _request(srv, "POST", "/api/translate", _png(32, 64))[0] == 200  # at the cap
        status, _, body = _request(srv, "POST", "/api/translate", _png(64, 64))
    error = json.loads(body)["error"]
    assert status == 400 and "over the own-size cap of 2048 pixels" in error and "decoded" not in error, error
    # The signature's own refusal (an export whose metadata does not say the cap) is worded as a cap, too.
    with pytest.raises(demo.SizeCapError, match="cap of 2048 pixels") as refusal:
        translator(_png(64, 64))
    assert "decoded" not in str(refusal.value)


def test_snap_to_palette_exact_values():
    pixels = np.array([[[138, 59, 128], [1, 2, 3], [83, 2, 79], [148, 118, 95]]], np.uint8)
    # road, void black, and two unscored labels (ground, guard rail) that keep their own colours
    expected = np.array([[[128, 64, 128], [0, 0, 0], [81, 0, 81], [150, 120, 90]]], np.uint8)
    np.testing.assert_array_equal(snap_to_palette(pixels), expected)


def test_image_dimensions_from_headers():
    assert demo.image_dimensions(_png(7, 300)) == (7, 300)
    assert demo.image_dimensions(tf.io.encode_jpeg(np.zeros((9, 21, 3), np.uint8)).numpy()) == (9, 21)


def test_translate_runs_at_the_images_own_size(server, generator):
    """A 45x70 image through the 32 px model: padded to 64x96 and cropped, not squashed to 32x32."""
    image = _png(45, 70, seed=4)
    status, _, body = _request(server, "POST", "/api/translate", image)
    served = _decode(body)
    assert status == 200 and served.shape == (45, 70, 3)
    net = inference_generator(generator)
    expected = to_uint8(translate_own_size(lambda x: net(x, training=False), to_float(_decode(image)[np.newaxis]), 32))
    assert np.abs(served.astype(int) - expected.numpy()[0].astype(int)).max() <= 1  # one uint8 level (rounding)


def test_modes_are_the_exports_and_a_different_request_is_refused(model_dir, paper_model_dir, capsys):
    assert demo.Translator(paper_model_dir).modes["test_mode"] == "paper"
    assert demo.Translator(paper_model_dir, "paper", "own").modes["resize_mode"] == "own"
    for argv, message in [
        (["--model", model_dir, "--test-mode", "paper"], "exported with --test-mode eval, not paper: re-export it"),
        (["--model", paper_model_dir, "--resize-mode", "squash"], "exported with --resize-mode own, not squash"),
        (["--model", model_dir, "--test-mode", "train"], "invalid choice: 'train'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            demo.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err, err
    # Paper mode in the browser's endpoint: dropout on, so the same painting comes back different.
    translate = demo.Translator(paper_model_dir)
    image = _png(32, 32, seed=5)
    assert not np.array_equal(_decode(translate(image)), _decode(translate(image)))


def test_model_folder_resolution_and_cli_errors(tmp_path, model_dir, capsys):
    # The model name folder of an export resolves to its highest version.
    assert demo.Translator(os.path.dirname(model_dir)).model_dir == model_dir
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--model", str(tmp_path)])
    assert exit_info.value.code == 2 and "no SavedModel" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--model", model_dir, "--examples", str(tmp_path / "missing")])
    assert exit_info.value.code == 2 and "--examples" in capsys.readouterr().err


def test_page_paints_translates_and_shows_the_result(server, tmp_path):
    """Headless chromium: pick road, paint, fill, undo, translate, download, live mode; shows the model's output."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1120, "height": 720})
            errors, requests = [], []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server.url)
            page.wait_for_selector("body[data-ready=true]")
            assert page.locator(".swatch").count() == 20

            page.click("#example")  # example 1 of 4, then paint over it
            page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Example 1')")
            before = page.evaluate(_COUNT_COLOUR, [128, 64, 128])
            page.click('.swatch[data-name="road"]')
            assert page.get_attribute('.swatch[data-name="road"]', "aria-checked") == "true"
            box = page.locator("#label").bounding_box()
            page.mouse.move(box["x"] + 40, box["y"] + 60)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(box["x"] + 40 + 30 * step, box["y"] + 60 + 8 * step)
            page.mouse.up()
            painted = page.evaluate(_COUNT_COLOUR, [128, 64, 128])
            assert painted > before + 2000  # a 16 px brush dragged ~200 canvas px

            page.check('input[name="tool"][value="fill"]')  # fill a region, then undo it
            page.mouse.click(box["x"] + 3, box["y"] + 3)
            assert page.evaluate(_COUNT_COLOUR, [128, 64, 128]) > painted
            page.click("#undo")
            assert page.evaluate(_COUNT_COLOUR, [128, 64, 128]) == painted

            page.click("#translate")
            page.wait_for_function("() => document.getElementById('result').dataset.generation === '1'")
            shown = page.evaluate(_RESULT_PIXELS)
            label_png = _data_url_bytes(page.evaluate("document.getElementById('label').toDataURL('image/png')"))
            with page.expect_download() as download:
                page.click("#download-result")
            downloaded = pathlib.Path(download.value.path()).read_bytes()

            page.check('input[name="tool"][value="brush"]')  # live mode: a new dot re-translates by itself
            page.check("#live")
            page.wait_for_function("() => document.getElementById('result').dataset.generation === '2'")
            page.mouse.click(box["x"] + 300, box["y"] + 40)
            page.wait_for_function("() => document.getElementById('result').dataset.generation === '3'")
            page.screenshot(path=str(tmp_path / "demo.png"))
            if os.environ.get("PIX2PIX_DEMO_SCREENSHOT"):  # this tiny model's page (docs/demo.png: benchmarks/demo_screenshot.py)
                page.screenshot(path=os.environ["PIX2PIX_DEMO_SCREENSHOT"])
        finally:
            browser.close()
    assert errors == []
    assert [url for url in requests if not url.startswith((server.url, "blob:", "data:"))] == []  # works offline
    assert (shown["width"], shown["height"]) == (256, 256)
    result = _decode(_data_url_bytes(shown["png"]))
    assert result.std() > 10  # not blank
    # The page shows, and downloads, exactly what the model makes of the painted canvas.
    expected = _decode(server.translator(label_png))
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(_decode(downloaded), expected)
    assert os.path.getsize(tmp_path / "demo.png") > 10_000


def _data_url_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


_COUNT_COLOUR = """([r, g, b]) => {
  const canvas = document.getElementById('label');
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] === r && d[i + 1] === g && d[i + 2] === b) n++;
  return n;
}"""

_RESULT_PIXELS = """() => {
  const img = document.getElementById('result');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  canvas.getContext('2d').drawImage(img, 0, 0);
  return {width: img.naturalWidth, height: img.naturalHeight, png: canvas.toDataURL('image/png')};
}"""
