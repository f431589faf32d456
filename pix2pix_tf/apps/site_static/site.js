// The static site's backend for demo.js (written by pix2pix-site): the generator runs in this browser with
// onnxruntime-web, on WebGPU where the browser offers an adapter and on WebAssembly otherwise; no server.
// ?ep=wasm or ?ep=webgpu in the page's URL forces one. Pre- and post-processing are the Python side's
// (data/pairs.py to_float / to_uint8) to the bit, so the browser's output differs from onnxruntime's in
// Python only where the two runtimes' float kernels round differently.

const ortDir = new URL("ort/", import.meta.url);  // static/ort/: the runtime files pix2pix-site copied
const forced = new URLSearchParams(location.search).get("ep") || "";
const runtimeLine = document.createElement("p");
runtimeLine.id = "runtime";
document.querySelector("header").append(runtimeLine);

// What the page can read from outside: demo.js uses the backend; tests and benchmarks read `pix2pixSite`.
const site = { ep: "", threads: 0, lastRunMs: 0, ready: null };
window.pix2pixSite = site;

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

// Threads need SharedArrayBuffer, which a browser gives only to a cross-origin-isolated page (served with the
// COOP/COEP headers; GitHub Pages cannot send them). Elsewhere onnxruntime-web runs on one thread.
function threadCount() {
  return globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
}

async function webgpuAdapter() {
  try {
    return Boolean(navigator.gpu && (await navigator.gpu.requestAdapter()));
  } catch {
    return false;
  }
}

async function openSession(ep, model) {
  // Two builds of the runtime: the WebGPU one's WebAssembly file is twice the size, so only WebGPU loads it.
  const ort = await import(new URL(ep === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs", ortDir).href);
  ort.env.wasm.wasmPaths = ortDir.href;
  ort.env.wasm.numThreads = threadCount();
  const session = await ort.InferenceSession.create(model, { executionProviders: [ep] });
  return { ort, session };
}

async function start(info) {
  const megabytes = (info.model_bytes / 1e6).toFixed(1);
  runtimeLine.textContent = `Loading the model (${megabytes} MB)…`;
  const model = new Uint8Array(await (await fetchOk(info.model)).arrayBuffer());
  const order = forced ? [forced] : (await webgpuAdapter()) ? ["webgpu", "wasm"] : ["wasm"];
  let failure;
  for (const ep of order) {
    try {
      const opened = await openSession(ep, model);
      site.ep = ep;
      site.threads = ep === "wasm" ? threadCount() : 0;
      runtimeLine.textContent = ep === "webgpu"
        ? `Runs in this browser: onnxruntime-web ${info.runtime.version} on WebGPU.`
        : `Runs in this browser: onnxruntime-web ${info.runtime.version} on WebAssembly, ${site.threads} thread` +
          (site.threads > 1 ? "s." : " (threads need a cross-origin-isolated page: COOP/COEP headers).");
      return opened;
    } catch (error) {
      failure = error;
      console.warn(`onnxruntime-web on ${ep} failed: ${error.message}`);
    }
  }
  runtimeLine.textContent = `The model cannot run in this browser: ${failure.message}`;
  throw failure;
}

// uint8 RGBA -> float32 NHWC RGB in [-1, 1], as to_float computes it in float32: rounding the double
// quotient to float32 gives the float32 quotient exactly, and likewise for the difference.
function toFloat(rgba, pixels) {
  const x = new Float32Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    for (let c = 0; c < 3; c++) x[3 * i + c] = Math.fround(rgba[4 * i + c] / 127.5) - 1;
  }
  return x;
}

// tf.round's rounding: halves to even.
function roundHalfEven(v) {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// float32 NHWC RGB in [-1, 1] -> uint8 RGBA, as to_uint8: round((x + 1) * 127.5) in float32, then clip.
function toRgba(y, pixels) {
  const rgba = new Uint8ClampedArray(pixels * 4);
  for (let i = 0; i < pixels; i++) {
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = roundHalfEven(Math.fround(Math.fround(y[3 * i + c] + 1) * 127.5));
    rgba[4 * i + 3] = 255;
  }
  return rgba;
}

let info, ready;

window.pix2pixBackend = {
  async info() {
    info = await (await fetchOk("site.json")).json();
    ready = site.ready = start(info);  // the model loads while the user paints
    ready.catch(() => {});  // reported by the runtime line now, and by translate() when asked
    return { ...info, model: `${info.source}, ${info.image_size.join("×")} px, in this browser` };
  },
  async example(index) {
    return (await fetchOk(`examples/${index}.png`)).blob();
  },
  async translate(canvas) {
    const { ort, session } = await ready;
    const [height, width] = info.image_size;  // the canvas is this size (demo.js resizeCanvas)
    const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    const input = new ort.Tensor("float32", toFloat(rgba, width * height), [1, height, width, 3]);
    const started = performance.now();
    const outputs = await session.run({ [session.inputNames[0]]: input });
    site.lastRunMs = performance.now() - started;
    const output = outputs[session.outputNames[0]];
    const result = new OffscreenCanvas(width, height);
    result.getContext("2d").putImageData(new ImageData(toRgba(output.data, width * height), width, height), 0, 0);
    input.dispose?.();
    output.dispose?.();
    return result.convertToBlob({ type: "image/png" });
  },
};
