"""TF Serving clients against local fakes that answer per TF Serving's REST and gRPC contracts."""

import base64
import http.server
import json
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from pix2pix_tf.core.networks import build_generator
from pix2pix_tf.deploy.clients import GrpcClient, RestClient, ServingError, rest_url
from pix2pix_tf.deploy.savedmodel import export_saved_model
from pix2pix_tf.predict import main as predict_main

SLOW_MODEL = "slow"  # the fakes stall on this name, to exercise client timeouts


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An exported tiny generator, its translate_encoded signature, and a reference uint8 translation."""
    tf.keras.utils.set_random_seed(3)
    path = export_saved_model(build_generator((32, 32), filters=4, depth=5), str(tmp_path_factory.mktemp("exports")))
    signatures = tf.saved_model.load(path).signatures
    return {"dir": path, "encoded": signatures["translate_encoded"], "uint8": signatures["serving_default"]}


class _RestHandler(http.server.BaseHTTPRequestHandler):
    """POST /v1/models/<name>[/versions/<v>]:predict, as TF Serving answers it (body shapes from its REST docs)."""

    signature = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith(f"/v1/models/{SLOW_MODEL}"):
            time.sleep(2)
        if self.path.startswith("/v1/models/garbled"):
            return self._send(200, {"outputs": "not what TF Serving sends"})
        if self.path not in ("/v1/models/pix2pix:predict", "/v1/models/pix2pix/versions/1:predict"):
            return self._send(404, {"error": f"Servable not found for request: {self.path}"})
        request = json.loads(body)
        if request.get("signature_name") != "translate_encoded":
            return self._send(400, {"error": f"Serving signature name: \"{request.get('signature_name')}\" not found"})
        try:
            images = tf.constant([base64.b64decode(row["b64"]) for row in request["instances"]])
            outputs = self.signature(image_bytes=images)["image_bytes"].numpy()
        except tf.errors.InvalidArgumentError as err:
            return self._send(400, {"error": err.message})
        self._send(200, {"predictions": [{"b64": base64.b64encode(png).decode()} for png in outputs]})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except BrokenPipeError:  # the client under test already gave up (timeout test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def rest_server(model):
    handler = type("Handler", (_RestHandler,), {"signature": staticmethod(model["encoded"])})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, signature):
        self.signature = signature

    def Predict(self, request, context):
        if request.model_spec.name == SLOW_MODEL:
            time.sleep(2)
        if request.model_spec.name != "pix2pix":
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})")
        images = tf.make_ndarray(request.inputs["image_bytes"])
        outputs = self.signature(image_bytes=tf.constant(images))["image_bytes"]
        response = predict_pb2.PredictResponse()
        response.outputs["image_bytes"].CopyFrom(tf.make_tensor_proto(outputs))
        return response


@pytest.fixture(scope="module")
def grpc_target(model):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(model["encoded"]), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def _images():
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8), rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    return [first, second], [tf.io.encode_png(first).numpy(), tf.io.encode_jpeg(second, quality=95).numpy()]


def _check_translations(model, encoded, outputs):
    assert len(outputs) == 2
    for data, png in zip(encoded, outputs):
        decoded = tf.io.decode_image(data, channels=3)
        expected = model["uint8"](images=decoded[tf.newaxis])["images"][0].numpy()
        assert np.array_equal(tf.io.decode_png(png).numpy(), expected)


def test_rest_url_follows_tf_serving_layout():
    assert rest_url("http://h:8501/", "pix2pix") == "http://h:8501/v1/models/pix2pix:predict"
    assert rest_url("http://h:8501", "m", 3) == "http://h:8501/v1/models/m/versions/3:predict"


def test_rest_client_round_trip(model, rest_server):
    _, encoded = _images()
    _check_translations(model, encoded, RestClient(rest_server).translate(encoded))
    _check_translations(model, encoded, RestClient(rest_server, version=1).translate(encoded))


def test_rest_client_errors_are_clear(rest_server):
    _, encoded = _images()
    with pytest.raises(ServingError, match=r"HTTP 404 .*Servable not found"):
        RestClient(rest_server, "nope").translate(encoded)
    with pytest.raises(ServingError, match=r"HTTP 400 .*"):
        RestClient(rest_server).translate([b"not an image"])
    with pytest.raises(ServingError, match="malformed answer"):
        RestClient(rest_server, "garbled").translate(encoded)
    with pytest.raises(ServingError, match=r"within 0.3 s"):
        RestClient(rest_server, SLOW_MODEL, timeout=0.3).translate(encoded)
    with pytest.raises(ServingError, match="cannot reach"):
        RestClient("http://127.0.0.1:9", timeout=2).translate(encoded)


def test_grpc_client_round_trip_and_errors(model, grpc_target):
    _, encoded = _images()
    client = GrpcClient(grpc_target)
    _check_translations(model, encoded, client.translate(encoded))
    client.close()
    with pytest.raises(ServingError, match="NOT_FOUND: Servable not found"):
        GrpcClient(grpc_target, "nope").translate(encoded)
    with pytest.raises(ServingError, match="DEADLINE_EXCEEDED"):
        GrpcClient(grpc_target, SLOW_MODEL, timeout=0.3).translate(encoded)


@pytest.mark.parametrize("backend", ["serving-rest", "serving-grpc"])
def test_predict_cli_through_serving_matches_savedmodel(backend, model, rest_server, grpc_target, tmp_path):
    images, _ = _images()
    for i, image in enumerate(images):
        tf.io.write_file(str(tmp_path / f"in{i}.png"), tf.io.encode_png(image))
    server = rest_server if backend == "serving-rest" else grpc_target
    assert predict_main([str(tmp_path / "in*.png"), "--backend", backend, "--server", server, "--output-dir", str(tmp_path / "out")]) == 0
    for i, image in enumerate(images):
        expected = model["uint8"](images=image[np.newaxis])["images"][0].numpy()
        assert np.array_equal(tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / f"in{i}.png"))).numpy(), expected)
