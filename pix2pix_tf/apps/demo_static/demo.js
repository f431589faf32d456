// pix2pix_tf demo page: paints a label map pixel by pixel (no anti-aliasing, so every pixel keeps an
// exact class colour) and has the backend translate it: the demo server's POST /api/translate, or the
// generator in the browser on the static site (pix2pix-site), whose static/site.js sets window.pix2pixBackend.
"use strict";

const canvas = document.getElementById("label");
const ctx = canvas.getContext("2d", { willReadFrequently: true });
let W = canvas.width, H = canvas.height;  // the backend's canvas size replaces these (resizeCanvas)
const result = document.getElementById("result");
const status = document.getElementById("status");
const UNDO_LIMIT = 50;
const LIVE_DELAY_MS = 400;

const state = {
  rgb: [128, 64, 128],
  pixels: ctx.createImageData(W, H),
  undo: [],
  last: null,          // last brush point of the current stroke
  busy: false,         // a translation is in flight
  pending: false,      // the canvas changed while it was
  liveTimer: 0,
  example: 0,
  examples: 0,
  resultUrl: "",
  generation: 0,
};

// The demo server's API. Each method throws an Error whose message is for the status line.
const serverBackend = {
  async info() {
    const response = await fetch("/api/info").catch((error) => { throw new Error(`cannot reach the demo server: ${error.message}`); });
    return response.json();
  },
  async example(index) {  // PNG blob of example `index`
    const response = await fetch(`/api/examples/${index}.png`);
    if (!response.ok) throw new Error((await response.json()).error);
    return response.blob();
  },
  async translate() {  // PNG blob of the generated photo for the canvas as it is now
    const response = await fetch("/api/translate", { method: "POST", headers: { "Content-Type": "image/png" }, body: await canvasBlob() });
    if (!response.ok) {
      const body = await response.json().catch(() => ({ error: response.statusText }));
      throw new Error(`${response.status}: ${body.error}`);
    }
    return response.blob();
  },
};
const backend = window.pix2pixBackend || serverBackend;

function setStatus(text, isError = false) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function fillAll(rgb) {
  const d = state.pixels.data;
  for (let i = 0; i < d.length; i += 4) { d[i] = rgb[0]; d[i + 1] = rgb[1]; d[i + 2] = rgb[2]; d[i + 3] = 255; }
}

function render() { ctx.putImageData(state.pixels, 0, 0); }

function pushUndo() {
  state.undo.push(new Uint8ClampedArray(state.pixels.data));
  if (state.undo.length > UNDO_LIMIT) state.undo.shift();
}

function changed() {
  render();
  if (!document.getElementById("live").checked) return;
  clearTimeout(state.liveTimer);
  state.liveTimer = setTimeout(translate, LIVE_DELAY_MS);
}

// A filled disc of diameter `size` centred on (cx, cy), in canvas pixels.
function disc(cx, cy, size) {
  const r = size / 2, d = state.pixels.data, [R, G, B] = state.rgb;
  for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(H - 1, Math.ceil(cy + r)); y++) {
    for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(W - 1, Math.ceil(cx + r)); x++) {
      const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= r * r || (Math.floor(cx) === x && Math.floor(cy) === y)) {
        const i = (y * W + x) * 4;
        d[i] = R; d[i + 1] = G; d[i + 2] = B; d[i + 3] = 255;
      }
    }
  }
}

function line(from, to, size) {
  const steps = Math.max(1, Math.ceil(Math.hypot(to.x - from.x, to.y - from.y)));
  for (let s = 0; s <= steps; s++) {
    disc(from.x + (to.x - from.x) * s / steps, from.y + (to.y - from.y) * s / steps, size);
  }
}

// Scanline flood fill of the 4-connected region of the clicked pixel's colour.
function floodFill(x0, y0) {
  const d = state.pixels.data, [R, G, B] = state.rgb;
  const at = (x, y) => (y * W + x) * 4;
  const i0 = at(x0, y0), target = [d[i0], d[i0 + 1], d[i0 + 2]];
  if (target[0] === R && target[1] === G && target[2] === B) return false;
  const same = (x, y) => { const i = at(x, y); return d[i] === target[0] && d[i + 1] === target[1] && d[i + 2] === target[2]; };
  const stack = [[x0, y0]];
  while (stack.length) {
    let [x, y] = stack.pop();
    while (x > 0 && same(x - 1, y)) x--;
    let up = false, down = false;
    for (; x < W && same(x, y); x++) {
      const i = at(x, y);
      d[i] = R; d[i + 1] = G; d[i + 2] = B; d[i + 3] = 255;
      if (y > 0) { const s = same(x, y - 1); if (s && !up) stack.push([x, y - 1]); up = s; }
      if (y < H - 1) { const s = same(x, y + 1); if (s && !down) stack.push([x, y + 1]); down = s; }
    }
  }
  return true;
}

function canvasPoint(event) {
  const box = canvas.getBoundingClientRect();
  return { x: (event.clientX - box.left) * W / box.width, y: (event.clientY - box.top) * H / box.height };
}

function brushSize() { return Number(document.getElementById("brush-size").value); }
function tool() { return document.querySelector('input[name="tool"]:checked').value; }

canvas.addEventListener("pointerdown", (event) => {
  const p = canvasPoint(event);
  pushUndo();
  if (tool() === "fill") {
    const x = Math.min(W - 1, Math.max(0, Math.floor(p.x))), y = Math.min(H - 1, Math.max(0, Math.floor(p.y)));
    if (floodFill(x, y)) changed(); else state.undo.pop();
    return;
  }
  canvas.setPointerCapture(event.pointerId);
  state.last = p;
  disc(p.x, p.y, brushSize());
  changed();
});
canvas.addEventListener("pointermove", (event) => {
  if (!state.last) return;
  const p = canvasPoint(event);
  line(state.last, p, brushSize());
  state.last = p;
  changed();
});
for (const name of ["pointerup", "pointercancel"]) canvas.addEventListener(name, () => { state.last = null; });

function undo() {
  if (!state.undo.length) return setStatus("Nothing to undo.");
  state.pixels.data.set(state.undo.pop());
  changed();
}

function clearCanvas() {
  pushUndo();
  fillAll([0, 0, 0]);
  changed();
}

async function loadExample() {
  if (!state.examples) return;
  const index = state.example;
  state.example = (index + 1) % state.examples;
  let bitmap;
  try {
    bitmap = await createImageBitmap(await backend.example(index));
  } catch (error) {
    return setStatus(error.message, true);
  }
  pushUndo();
  ctx.clearRect(0, 0, W, H);
  ctx.imageSmoothingEnabled = false;  // keep class colours exact
  ctx.drawImage(bitmap, 0, 0, W, H);
  state.pixels = ctx.getImageData(0, 0, W, H);
  setStatus(`Example ${index + 1} of ${state.examples}.`);
  changed();
}

function canvasBlob() { return new Promise((resolve) => canvas.toBlob(resolve, "image/png")); }

async function translate() {
  if (state.busy) { state.pending = true; return; }
  state.busy = true;
  state.pending = false;
  document.getElementById("translate").disabled = true;
  setStatus("Translating…");
  const started = performance.now();
  try {
    const url = URL.createObjectURL(await backend.translate(canvas));
    await new Promise((resolve, reject) => { result.onload = resolve; result.onerror = () => reject(new Error("the reply is not an image")); result.src = url; });
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = url;
    result.dataset.generation = String(++state.generation);
    document.getElementById("download-result").disabled = false;
    setStatus(`Done in ${Math.round(performance.now() - started)} ms.`);
  } catch (error) {
    setStatus(`Translation failed: ${error.message}`, true);
  } finally {
    state.busy = false;
    document.getElementById("translate").disabled = false;
    if (state.pending) translate();
  }
}

function download(url, name) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
}

function buildPalette(palette) {
  const box = document.getElementById("palette");
  for (const { name, rgb } of palette) {
    const swatch = document.createElement("button");
    swatch.type = "button";
    swatch.className = "swatch";
    swatch.setAttribute("role", "radio");
    swatch.setAttribute("aria-checked", "false");
    swatch.dataset.name = name;
    swatch.title = `${name}: rgb(${rgb.join(", ")})`;
    const dot = document.createElement("i");
    dot.style.background = `rgb(${rgb.join(",")})`;
    swatch.append(dot, name === "void" ? "void (eraser)" : name);
    swatch.addEventListener("click", () => {
      state.rgb = rgb;
      for (const other of box.children) other.setAttribute("aria-checked", String(other === swatch));
    });
    box.append(swatch);
  }
  box.children[0].click();
}

// The canvas is the size the backend translates at (the static site's model size); painting starts over.
function resizeCanvas(side) {
  if (!side || (side === W && side === H)) return;
  canvas.width = canvas.height = W = H = side;
  state.pixels = ctx.createImageData(W, H);
  state.undo = [];
  fillAll([0, 0, 0]);
  render();
}

async function init() {
  fillAll([0, 0, 0]);
  render();
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("clear").addEventListener("click", clearCanvas);
  document.getElementById("example").addEventListener("click", loadExample);
  document.getElementById("translate").addEventListener("click", translate);
  document.getElementById("live").addEventListener("change", (e) => { if (e.target.checked) translate(); });
  document.getElementById("download-label").addEventListener("click", () => download(canvas.toDataURL("image/png"), "label.png"));
  document.getElementById("download-result").addEventListener("click", () => download(state.resultUrl, "pix2pix.png"));
  const size = document.getElementById("brush-size");
  size.addEventListener("input", () => { document.getElementById("brush-size-value").textContent = size.value; });
  document.addEventListener("keydown", (e) => { if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); } });
  try {
    const info = await backend.info();
    resizeCanvas(info.canvas);
    buildPalette(info.palette);
    state.examples = info.examples;
    const example = document.getElementById("example");
    example.disabled = !info.examples;
    if (info.examples) example.title = `${info.examples} label maps from the val split`;
    document.getElementById("model").textContent = `model: ${info.model}`;
    document.body.dataset.ready = "true";
  } catch (error) {
    setStatus(`Cannot start the page: ${error.message}`, true);
  }
}

init();
