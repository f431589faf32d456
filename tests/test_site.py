"""The static demo site (pix2pix-site): the folder it writes, its errors, and the page in a real headless chromium
against onnxruntime in Python. Needs onnxruntime-web (`pix2pix-site --install-runtime`; scripts/test.sh runs it)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from test_demo import CHROMIUM, CHROMIUM_ARGS

from pix2pix_tf.apps import demo, site
from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.data.pairs import to_float, to_uint8
from pix2pix_tf.deploy.onnx import OnnxGenerator

SIDE = 32
# Chromium's software WebGPU adapter (SwiftShader on the CPU), so the WebGPU path runs without a GPU.
WEBGPU_ARGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan"]


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> str:
    """A tiny untrained generator whose last layer is scaled up, so its output spans the colour range (as in
    test_demo): a blank or constant result would then be a failure, not the model's."""
    generator = build_generator((SIDE, SIDE), filters=4, depth=5)
    kernel = generator.get_layer("output_deconv").kernel
    kernel.assign(kernel * 300.0)
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    generator.save(path)
    return path


@pytest.fixture(scope="module")
def site_dir(keras_file, pair_dir, tmp_path_factory) -> str:
    """The site the command writes from the .keras file (converted to ONNX) with the pair folder's label maps."""
    folder = str(tmp_path_factory.mktemp("sites") / "site")
    assert site.main(["--model", keras_file, "--output-dir", folder, "--examples", pair_dir]) == 0
    return folder


def test_the_site_is_a_self_contained_folder(site_dir, pair_dir):
    files = [os.path.relpath(os.path.join(root, name), site_dir) for root, _, names in os.walk(site_dir)
             for name in names]  # fmt: skip
    runtime = [f"static/ort/{name}" for name in site.runtime_file_names()]
    examples = [f"examples/{i}.png" for i in range(4)]
    pages = ["index.html", "static/demo.js", "static/demo.css", "static/site.js", ".nojekyll"]
    assert sorted(files) == sorted([*pages, "site.json", "model/generator.onnx", *runtime, *examples])
    with open(os.path.join(site_dir, "site.json")) as f:
        info = json.load(f)
    with open(os.path.join(site_dir, "model", "generator.onnx"), "rb") as f:
        model = f.read()
    assert (info["canvas"], info["image_size"], info["examples"]) == (SIDE, [SIDE, SIDE], 4)
    assert info["source"] == "tiny.keras"  # the file's name, not its path: the site is public
    assert (info["model"], info["model_bytes"]) == ("model/generator.onnx", len(model))
    assert info["model_sha256"] == hashlib.sha256(model).hexdigest()
    assert info["runtime"]["version"] == site.runtime_version() and len(info["palette"]) == 20
    # Relative URLs only (a GitHub Pages project site lives under /REPO/), and nothing from elsewhere.
    with open(os.path.join(site_dir, "index.html")) as f:
        html = f.read()
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert urls == ["static/demo.css", "data:,", "static/site.js", "static/demo.js"]
    assert "Content-Security-Policy" in html
    # Examples: the val label maps at the model's size, as the demo server would serve them at that size.
    with open(os.path.join(site_dir, "examples", "1.png"), "rb") as f:
        example = tf.io.decode_png(f.read()).numpy()
    np.testing.assert_array_equal(example, tf.io.decode_png(demo.Examples(pair_dir, side=SIDE).png(1)).numpy())


@pytest.mark.parametrize(
    "variant, isolated, args",
    [
        ("wasm", False, []),  # what GitHub Pages gives: no isolation headers, so one thread; no WebGPU adapter
        ("wasm-threads", True, []),
        ("webgpu", False, WEBGPU_ARGS),
    ],
)
def test_page_translates_in_the_browser_as_onnxruntime_does(site_dir, variant, isolated, args):
    """Load an example, paint on it, translate; the page's pixels against onnxruntime's in Python on the same label map.

    Tolerance: one uint8 level. The page's uint8 -> [-1, 1] -> uint8 is the Python side's to the bit (site.js
    rounds each float32 step as TF does, halves to even), so the two results differ only where the runtimes'
    float kernels (WebAssembly SIMD or WebGPU against native x86) sum in another order; those ~1e-6 differences
    move a value across a rounding boundary at most, never by two levels.
    """
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    server = site.serve_static(site_dir, isolated)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + args)
            try:
                page = browser.new_page()
                errors, requests = [], []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
                page.on("request", lambda request: requests.append(request.url))
                page.goto(url)
                page.wait_for_selector("body[data-ready=true]")
                page.evaluate("window.pix2pixSite.ready.then(() => true)")
                backend = page.evaluate("({ep: pix2pixSite.ep, threads: pix2pixSite.threads, "
                                        "cores: navigator.hardwareConcurrency})")  # fmt: skip
                runtime_line = page.text_content("#runtime")
                assert page.evaluate("(c => [c.width, c.height])(document.getElementById('label'))") == [SIDE, SIDE]
                page.click("#example")
                page.click("#example")  # example 2 of 4
                page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Example 2')")
                page.click('.swatch[data-name="car"]')
                box = page.locator("#label").bounding_box()
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a car dot on the example
                page.click("#translate")
                page.wait_for_function("() => document.getElementById('result').dataset.generation === '1'")
                label = np.array(page.evaluate(_LABEL_PIXELS), np.uint8).reshape(SIDE, SIDE, 4)
                shown = np.array(page.evaluate(_RESULT_PIXELS), np.uint8).reshape(SIDE, SIDE, 4)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert errors == []
    assert all(u.startswith((url, "blob:", "data:")) for u in requests), requests  # works offline
    expected_threads = {"wasm": 1, "wasm-threads": min(4, backend["cores"]), "webgpu": 0}[variant]
    assert (backend["ep"], backend["threads"]) == (variant.split("-")[0], expected_threads)
    assert ("WebGPU" if variant == "webgpu" else f"WebAssembly, {expected_threads} thread") in runtime_line
    with open(os.path.join(site_dir, "examples", "1.png"), "rb") as f:
        example = tf.io.decode_png(f.read()).numpy()
    painted = np.any(label[..., :3] != example, axis=-1)
    assert 0 < painted.sum() < SIDE * SIDE // 2 and np.all(label[painted][:, :3] == (0, 0, 142))  # the car dot
    onnxruntime = OnnxGenerator(os.path.join(site_dir, "model", "generator.onnx"))
    expected = to_uint8(onnxruntime(to_float(label[np.newaxis, ..., :3])))
    difference = np.abs(shown[..., :3].astype(int) - expected.numpy()[0].astype(int))
    assert shown[..., :3].std() > 10  # not blank
    assert difference.max() <= 1, f"max {difference.max()}, {np.mean(difference > 0):.2%} of values differ"
    assert np.all(shown[..., 3] == 255)


def test_a_built_site_is_rebuilt_only_with_overwrite(site_dir, tmp_path, capsys):
    """From the site's own generator.onnx (no conversion): a second site, then refusals that change nothing."""
    model = os.path.join(site_dir, "model", "generator.onnx")
    out = str(tmp_path / "site")
    assert site.main(["--model", model, "--output-dir", out, "--example-count", "3"]) == 0  # synthetic examples
    with open(os.path.join(out, "site.json")) as f:
        info = json.load(f)
    assert (info["examples"], info["source"], info["canvas"]) == (3, "generator.onnx", SIDE)
    assert tf.io.decode_png(tf.io.read_file(os.path.join(out, "examples", "2.png"))).shape == (SIDE, SIDE, 3)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    for argv, message in [
        (["--model", model, "--output-dir", out], "already holds a site: pass --overwrite"),
        (["--model", model, "--output-dir", str(tmp_path / "other"), "--overwrite"], "other files (no site.json)"),
        (["--model", str(tmp_path / "nope.keras"), "--output-dir", out, "--overwrite"], "nope.keras does not exist"),
        (["--model", str(tmp_path), "--output-dir", str(tmp_path / "new")], "not an export folder holding"),
        (["--output-dir", str(tmp_path / "new")], "--model is required"),
        (["--model", model, "--output-dir", str(tmp_path / "new"), "--runtime-dir", str(tmp_path / "none")],
         "is not installed in"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            site.main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()[-1]) > 0, err
    assert "run pix2pix-site --install-runtime (needs npm)" in err  # the missing runtime names its install command
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep me" and not (tmp_path / "new").exists()
    assert site.main(["--model", model, "--output-dir", out, "--overwrite", "--example-count", "1"]) == 0
    assert sorted(os.listdir(os.path.join(out, "examples"))) == ["0.png"]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary folder left


def test_the_painting_page_needs_a_square_rgb_generator(tmp_path, capsys):
    colorizer = build_generator((SIDE, SIDE), input_channels=1, output_channels=2, filters=4, depth=5)  # L -> ab
    wide = build_generator((SIDE, 2 * SIDE), filters=4, depth=5)
    cases = [(colorizer, "needs a generator of RGB label maps"), (wide, "the painting page's canvas is square")]
    for generator, message in cases:
        path = str(tmp_path / f"{generator.input_shape[-1]}-{generator.input_shape[2]}.keras")
        generator.save(path)
        with pytest.raises(SystemExit) as exit_info:
            site.main(["--model", path, "--output-dir", str(tmp_path / "site")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "site").exists()


def test_the_runtime_installer_runs_npm_ci_on_the_committed_lock_file(tmp_path, monkeypatch):
    """With npm missing: the one-line error naming what to install. With an npm that records its call: `npm ci`
    of the committed package.json and lock file, install scripts off."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(site.UsageError, match=r"npm is not installed: install Node.js .* run pix2pix-site --install"):
        site.install_runtime(str(tmp_path / "runtime"))
    (tmp_path / "bin").mkdir()
    npm = tmp_path / "bin" / "npm"
    npm.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\nexit 1\n')
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(site.UsageError, match="npm ci of onnxruntime-web into .* failed"):
        site.install_runtime(str(tmp_path / "runtime"))
    assert (tmp_path / "args").read_text().split() == ["ci", "--prefix", str(tmp_path / "runtime"), "--ignore-scripts",
                                                       "--no-audit", "--no-fund", "--loglevel", "error"]  # fmt: skip
    lock = json.loads((tmp_path / "runtime" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == site.runtime_version()
    assert lock["packages"]["node_modules/onnxruntime-web"]["integrity"].startswith("sha512-")


_LABEL_PIXELS = """() => {
  const canvas = document.getElementById('label');
  return Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data);
}"""

_RESULT_PIXELS = """() => {
  const img = document.getElementById('result');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data);
}"""
