"""TF Serving clients for an exported pix2pix model: REST (JSON, b64 images) and gRPC (PredictionService).

Both send encoded JPEG/PNG bytes to the `translate_encoded` signature and return PNG bytes at each
input's own size, so the pre/post-processing that runs is the one inside the SavedModel.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence

from ..extras import import_extra

SIGNATURE = "translate_encoded"
INPUT_KEY = OUTPUT_KEY = "image_bytes"


class ServingError(RuntimeError):
    """TF Serving could not be reached, refused the request, or answered something that is not a prediction."""


def rest_url(base_url: str, model_name: str, version: int | None = None) -> str:
    """`{base}/v1/models/{name}[/versions/{v}]:predict`, TF Serving's REST predict endpoint."""
    path = f"/v1/models/{model_name}" + (f"/versions/{int(version)}" if version else "") + ":predict"
    return base_url.rstrip("/") + path


class RestClient:
    """Calls TF Serving's REST API (default port 8501).

    Args:
        base_url: e.g. "http://localhost:8501".
        model_name: the served MODEL_NAME.
        version: a pinned version, or None for the latest TF Serving has loaded.
        timeout: seconds to wait for the answer.
    """

    def __init__(self, base_url: str, model_name: str = "pix2pix", version: int | None = None, timeout: float = 30.0):
        self.url = rest_url(base_url, model_name, version)
        self.timeout = timeout

    def translate(self, images: Sequence[bytes]) -> list[bytes]:
        """JPEG/PNG bytes in, PNG bytes out (one per input, each at its input's size).

        Raises:
            ServingError: connection failure, timeout, a non-200 status (with TF Serving's `error`
                text), or a body without one b64 prediction per input.
        """
        # TF Serving's JSON carries binary as {"b64": ...}; outputs named *_bytes come back the same way.
        body = {"signature_name": SIGNATURE, "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images]}
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise ServingError(f"TF Serving answered HTTP {err.code} for {self.url}: {_error_text(err.read())}") from err
        except TimeoutError as err:
            raise ServingError(f"no answer from {self.url} within {self.timeout:g} s") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, (socket.timeout, TimeoutError)):
                raise ServingError(f"no answer from {self.url} within {self.timeout:g} s") from err
            raise ServingError(f"cannot reach TF Serving at {self.url}: {err.reason}") from err
        return _parse_predictions(raw, len(images), self.url)


def _error_text(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")[:200] or "(empty body)"


def _parse_predictions(raw: bytes, count: int, url: str) -> list[bytes]:
    try:
        predictions = json.loads(raw)["predictions"]
        # A signature with a single output gives bare values; several outputs give {name: value} rows.
        values = [row[OUTPUT_KEY] if isinstance(row, dict) and OUTPUT_KEY in row else row for row in predictions]
        outputs = [base64.b64decode(value["b64"], validate=True) for value in values]
    except (ValueError, KeyError, TypeError) as err:
        raise ServingError(f"malformed answer from {url}: expected {{'predictions': [{{'b64': ...}}]}}, got {raw[:200]!r}") from err
    if len(outputs) != count:
        raise ServingError(f"{url} returned {len(outputs)} predictions for {count} images")
    return outputs


class GrpcClient:
    """Calls TF Serving's gRPC PredictionService (default port 8500).

    Args:
        target: "host:port".
        model_name: the served MODEL_NAME.
        version: a pinned version, or None for the latest.
        timeout: seconds before the call fails with DEADLINE_EXCEEDED.

    Raises:
        UsageError: tensorflow-serving-api (the `serving` extra) is not installed.
    """

    def __init__(self, target: str, model_name: str = "pix2pix", version: int | None = None, timeout: float = 30.0):
        import grpc

        apis = import_extra("tensorflow_serving.apis.prediction_service_pb2_grpc", "the TF Serving gRPC client")
        self.target, self.model_name, self.version, self.timeout = target, model_name, version, timeout
        # Images can exceed gRPC's 4 MB default message size.
        options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        self._channel = grpc.insecure_channel(target, options=options)
        self._stub = apis.PredictionServiceStub(self._channel)

    def translate(self, images: Sequence[bytes]) -> list[bytes]:
        """JPEG/PNG bytes in, PNG bytes out.

        Raises:
            ServingError: the RPC failed (unreachable, timeout, unknown model, bad input) or the
                response lacks the `image_bytes` output.
        """
        import grpc
        import tensorflow as tf

        request = import_extra("tensorflow_serving.apis.predict_pb2", "the TF Serving gRPC client").PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = SIGNATURE
        if self.version:
            request.model_spec.version.value = int(self.version)
        request.inputs[INPUT_KEY].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise ServingError(f"TF Serving gRPC call to {self.target} failed: {err.code().name}: {err.details()}") from err
        if OUTPUT_KEY not in response.outputs:
            raise ServingError(f"{self.target} answered without an {OUTPUT_KEY!r} output: {sorted(response.outputs)}")
        outputs = list(tf.make_ndarray(response.outputs[OUTPUT_KEY]).reshape(-1))
        if len(outputs) != len(images):
            raise ServingError(f"{self.target} returned {len(outputs)} outputs for {len(images)} images")
        return outputs

    def close(self) -> None:
        self._channel.close()
