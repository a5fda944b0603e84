"""`sensorium serve`'s API, in-process: a real HTTP server on 127.0.0.1 (on a background thread) serving
the bundled .tflite models, called over HTTP. Every endpoint, every error status, and the conduct under
load and bad input (batching, health checks during a slow request, the drain, CORS, the access log).

The default server (no --model) serves the bundled defaults: `imagenet` (photos, 1,000 classes; it refuses
images under 32 px), speech, sentiment and translation. The tests of batching, queues, workers and the
drain serve the bundled MNIST model instead (`--model image=digits`: 28x28 px, 10 classes, fast)."""
from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason='sensorium serve needs the serve extra: pip install "sensorium[serve]"')

from sensorium.apps.serve.http import STATE  # noqa: E402
from sensorium.apps.serve.inputs import Limits  # noqa: E402
from sensorium.apps.serve.models import ModelSpec, ServedModel, default_specs, load_models, parse_model_spec  # noqa: E402
from sensorium.apps.serve.server import Server  # noqa: E402
from sensorium.runtime.errors import UsageError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "assets" / "examples"
PNG7 = (EXAMPLES / "digit-7.png").read_bytes()
PNG2 = (EXAMPLES / "digit-2.png").read_bytes()
CAT = (EXAMPLES / "cat.jpg").read_bytes()  # imagenet: "Egyptian cat", "tabby" in its top 5
COFFEE = (EXAMPLES / "coffee.jpg").read_bytes()  # imagenet: "espresso"
TOO_SMALL = "image is 28x28 px; this model needs at least 32 px on each side"  # a digit, to imagenet
WAV = (EXAMPLES / "speech-four-two-seven.wav").read_bytes()


# --- a client ----------------------------------------------------------------------------------------
class Client:
    def __init__(self, server: Server) -> None:
        self.host, self.port = "127.0.0.1", server.port

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 60) -> tuple[int, dict, Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            head = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        parsed = json.loads(data) if head.get("content-type", "").startswith("application/json") else data
        return response.status, head, parsed

    def get(self, path: str, **kw: Any) -> tuple[int, dict, Any]:
        return self.request("GET", path, **kw)

    def post_json(self, path: str, value: Any, **kw: Any) -> tuple[int, dict, Any]:
        return self.request("POST", path, json.dumps(value).encode(), {"Content-Type": "application/json"}, **kw)

    def post_form(self, path: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[int, dict, Any]:
        body, content_type = multipart(parts)
        return self.request("POST", path, body, {"Content-Type": content_type})


def multipart(parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart/form-data body of (field, filename, content type, data) parts."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, filename, content_type, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out.write(f"Content-Disposition: {disposition}\r\n".encode())
        if content_type:
            out.write(f"Content-Type: {content_type}\r\n".encode())
        out.write(b"\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


class Slow:
    """A predictor that takes `seconds` longer than the one it wraps (same metadata)."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def records(self, items: Any) -> Any:
        self.calls += 1
        time.sleep(self.seconds)
        return self.inner.records(items)


# --- servers -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    """The default server's models: every bundled default (imagenet, speech, sentiment, translation)."""
    return load_models(default_specs())


@pytest.fixture(scope="module")
def digits():
    """The bundled MNIST model, as `sensorium serve --model image=digits` serves it."""
    return load_models([parse_model_spec("image=digits")])[0]


@pytest.fixture(scope="module")
def server(models):
    srv = Server(models, host="127.0.0.1", port=0).start_in_thread()
    yield srv
    srv.stop_thread()


@pytest.fixture
def client(server):
    return Client(server)


@pytest.fixture(scope="module")
def digits_server(digits):
    srv = Server([digits], host="127.0.0.1", port=0).start_in_thread()
    yield srv
    srv.stop_thread()


@pytest.fixture
def digits_client(digits_server):
    return Client(digits_server)


def served(models: list, **kw: Any) -> Server:
    """Another server (its models are its own: stopping a server stops its models' workers)."""
    return Server(models, host="127.0.0.1", port=0, **kw).start_in_thread()


def assert_error(result: tuple[int, dict, Any], status: int, *words: str) -> str:
    code, head, body = result
    assert code == status, (code, body)
    assert head["content-type"].startswith("application/json")
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    message = body["error"]
    assert "\n" not in message and "Traceback" not in message and 0 < len(message) <= 500
    for word in words:
        assert word in message, message
    return message


# --- TF Serving's API --------------------------------------------------------------------------------
def test_status_metadata_and_the_model_list(client, digits_client):
    code, _, body = client.get("/v1/models/imagenet")
    assert code == 200 and body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get("/v1/models/imagenet/versions/1")[2] == body

    code, _, meta = client.get("/v1/models/imagenet/metadata")
    assert code == 200 and meta["model_spec"] == {"name": "imagenet", "signature_name": "", "version": "1"}
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict" and "image" in signature["inputs"]
    details = meta["metadata"]["sensorium"]
    assert len(details["labels"]) == 1000 and {"Egyptian cat", "tabby", "espresso"} <= set(details["labels"])
    assert details["image_size"] == [224, 224] and details["options"] == {"top_k": 5}
    assert details["record_fields"] == ["input", "ok", "label", "score", "top_k"]
    assert details["file"] == "model-float16.tflite" and "/" not in json.dumps(details["file"])
    assert client.get("/v1/models/imagenet/versions/1/metadata")[2] == meta
    for name, field in (("speech", "sample_rate"), ("sentiment", "labels"), ("translation", "max_source_length")):
        code, _, meta = client.get(f"/v1/models/{name}/metadata")
        assert code == 200 and field in meta["metadata"]["sensorium"]

    code, _, listing = client.get("/v1/models")
    assert [(m["name"], m["task"]) for m in listing["models"]] == [
        ("imagenet", "image"), ("speech", "speech"), ("sentiment", "sentiment"), ("translation", "translation")]
    assert client.get("/healthz")[:3:2] == (200, {"status": "ok", "models": sorted(
        ["imagenet", "speech", "sentiment", "translation"])})
    assert client.get("/v1/models/digits")[0] == 404  # bundled, but served only when asked for

    # --model image=digits: the MNIST model under its bundled name
    code, _, meta = digits_client.get("/v1/models/digits/metadata")
    assert code == 200 and meta["model_spec"]["name"] == "digits"
    details = meta["metadata"]["sensorium"]
    assert details["labels"] == [str(i) for i in range(10)] and details["image_size"] == [28, 28]
    assert details["file"] == "model-int8.tflite"
    assert [(m["name"], m["task"]) for m in digits_client.get("/v1/models")[2]["models"]] == [("digits", "image")]


def test_predict_gives_the_records_of_the_python_api(client, digits_client):
    import sensorium

    code, _, body = client.post_json("/v1/models/imagenet:predict", {"instances": [b64(CAT), {"image": b64(COFFEE)}]})
    assert code == 200
    assert client.post_json("/v1/models/imagenet:predict", {"signature_name": "serving_bytes", "instances": [
        {"images": b64(CAT)}, b64(COFFEE)]})[2] == body  # a request written for TF Serving's serving_bytes
    expected = sensorium.pipeline("classify", top_k=5)([CAT, COFFEE])  # the default image model: imagenet
    assert body == {"predictions": expected}  # "input" is the instance index, as the API names bytes
    cat, coffee = body["predictions"]
    assert (cat["label"], coffee["label"]) == ("Egyptian cat", "espresso")
    assert len(cat["top_k"]) == 5 and "tabby" in [t["label"] for t in cat["top_k"]]

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(CAT)).convert("RGB"))
    code, _, body = client.post_json("/v1/models/imagenet/versions/1:predict", {"instances": [pixels.tolist()]})
    assert code == 200 and body["predictions"][0]["label"] == "Egyptian cat"

    # the digits model (--model image=digits): the Python API's records, and pixels in every layout
    code, _, body = digits_client.post_json("/v1/models/digits:predict", {"instances": [b64(PNG7), b64(PNG2)]})
    assert code == 200 and body == {"predictions": sensorium.pipeline("classify", "digits", top_k=5)([PNG7, PNG2])}
    assert [r["label"] for r in body["predictions"]] == ["7", "2"]
    pixels = np.asarray(Image.open(io.BytesIO(PNG7)).convert("L"))
    code, _, body = digits_client.post_json("/v1/models/digits/versions/1:predict",
                                            {"instances": [pixels.tolist(), pixels[..., None].repeat(3, -1).tolist()]})
    assert code == 200 and [r["label"] for r in body["predictions"]] == ["7", "7"]

    code, _, body = client.post_json("/v1/models/speech:predict", {"instances": [b64(WAV)]})
    assert code == 200
    record = body["predictions"][0]
    assert record["input"] == 0 and record["text"] == "four two seven" and record["segments"][0]["end"] > 1
    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(WAV), dtype="float32")
    code, _, body = client.post_json("/v1/models/speech:predict",
                                     {"instances": [{"waveform": wave.tolist(), "sample_rate": rate}]})
    assert code == 200 and body["predictions"][0]["text"] == "four two seven"

    texts = ["I love this airline, the crew was great", "Delayed three hours and nobody told us anything"]
    code, _, body = client.post_json("/v1/models/sentiment:predict", {"instances": texts})
    assert code == 200 and body == {"predictions": sensorium.pipeline("sentiment")(texts)}
    assert [r["label"] for r in body["predictions"]] == ["positive", "negative"]

    code, _, body = client.post_json("/v1/models/translation:predict", {"inputs": {"text": ["Delete %(name)s?"]}})
    assert code == 200 and set(body) == {"outputs"}
    assert body["outputs"] == sensorium.pipeline("translate")(["Delete %(name)s?"])
    assert "%(name)s" in body["outputs"][0]["translation"]

    code, _, body = client.request("POST", "/v1/models/sentiment:predict",  # curl -d, as TF Serving's docs
                                   b'{"instances": ["fine"]}', {"Content-Type": "application/x-www-form-urlencoded"})
    assert code == 200 and body["predictions"][0]["ok"]


def test_errors_record_gives_each_instance_its_record(client, digits_client):
    code, _, body = client.post_json("/v1/models/imagenet:predict",
                                     {"instances": [b64(CAT), b64(b"not an image"), b64(PNG7), b64(COFFEE)],
                                      "errors": "record"})
    assert code == 200
    ok, bad, small, ok2 = body["predictions"]
    assert ok["label"] == "Egyptian cat" and ok2["label"] == "espresso"
    assert bad == {"input": 1, "ok": False, "error": "instance 1: not an image (unrecognised format)"}
    assert small == {"input": 2, "ok": False, "error": f"instance 2: {TOO_SMALL}"}  # a 28 px digit: under 32 px
    code, _, body = digits_client.post_json("/v1/models/digits:predict",
                                            {"instances": [b64(PNG7), b64(b"not an image")], "errors": "record"})
    assert code == 200 and body["predictions"][0]["label"] == "7" and not body["predictions"][1]["ok"]
    code, _, body = client.post_json("/v1/models/sentiment:predict", {"instances": ["good", " "], "errors": "record"})
    assert code == 200 and body["predictions"][1] == {"input": " ", "ok": False, "error": "empty text"}


# --- the convenience endpoints ------------------------------------------------------------------------
def test_convenience_endpoints_take_files_json_and_raw_bodies(client, digits_client):
    code, _, record = client.post_form("/classify", [("file", "../../etc/cat.jpg", "image/jpeg", CAT)])
    assert code == 200 and record["input"] == "cat.jpg" and record["label"] == "Egyptian cat"
    assert len(record["top_k"]) == 5 and "tabby" in [t["label"] for t in record["top_k"]]
    code, _, record = client.post_form("/classify", [("note", None, None, b"x"),
                                                     ("file", "C:\\\\fakepath\\\\cup.jpg", "application/octet-stream",
                                                      COFFEE)])
    assert code == 200 and record["input"] == "cup.jpg" and record["label"] == "espresso"
    code, _, record = client.post_json("/classify", {"image": b64(CAT)})
    assert code == 200 and record["input"] == 0 and record["label"] == "Egyptian cat"
    code, _, record = client.request("POST", "/classify?model=imagenet", COFFEE, {"Content-Type": "image/jpeg"})
    assert code == 200 and record["label"] == "espresso"
    code, _, record = digits_client.post_form("/classify", [("file", "digit-7.png", "image/png", PNG7)])
    assert code == 200 and record["input"] == "digit-7.png" and record["label"] == "7" and len(record["top_k"]) == 5
    code, _, record = digits_client.request("POST", "/classify?model=digits", PNG2, {"Content-Type": "image/png"})
    assert code == 200 and record["label"] == "2"

    code, _, record = client.post_form("/transcribe", [("file", "talk.wav", "audio/wav", WAV)])
    assert code == 200 and record["input"] == "talk.wav" and record["text"] == "four two seven"
    assert record["segments"] and set(record["segments"][0]) == {"start", "end", "text"}
    code, _, record = client.request("POST", "/transcribe", WAV, {"Content-Type": "audio/x-wav"})
    assert code == 200 and record["text"] == "four two seven"
    code, _, record = client.post_json("/transcribe", {"audio": b64(WAV)})
    assert code == 200 and record["text"] == "four two seven"

    code, _, record = client.post_json("/sentiment", {"text": "I love this airline, the crew was great"})
    assert code == 200 and record["label"] == "positive" and set(record["scores"]) == {"negative", "neutral",
                                                                                        "positive"}
    code, _, record = client.request("POST", "/sentiment", b"awful, never again",
                                     {"Content-Type": "text/plain; charset=utf-8"})
    assert code == 200 and record["label"] == "negative" and record["input"] == "awful, never again"
    code, _, record = client.post_form("/translate", [("text", None, None, b"Delete %(name)s?")])
    assert code == 200 and "%(name)s" in record["translation"] and record["input"] == "Delete %(name)s?"
    code, _, record = client.request("POST", "/translate", b"text=Open+%25s", {"Content-Type":
                                                                               "application/x-www-form-urlencoded"})
    assert code == 200 and "%s" in record["translation"] and record["input"] == "Open %s"


# --- every error status, and the next request is served -------------------------------------------------
def test_bad_requests_are_400(client):
    cases = [
        (client.request("POST", "/v1/models/imagenet:predict", b"{nope", {"Content-Type": "application/json"}),
         "not valid JSON"),
        (client.request("POST", "/v1/models/imagenet:predict", b"", {"Content-Type": "application/json"}), "empty"),
        (client.post_json("/v1/models/imagenet:predict", [1, 2]), "JSON object"),
        (client.post_json("/v1/models/imagenet:predict", {"instance": []}), "unknown field"),
        (client.post_json("/v1/models/imagenet:predict", {"instances": []}), "non-empty list"),
        (client.post_json("/v1/models/imagenet:predict", {"instances": [{"b64": "%%%not base64"}]}), "invalid base64"),
        (client.post_json("/v1/models/imagenet:predict", {"instances": [[[1, 2], [3]]]}), "different lengths"),
        (client.post_json("/v1/models/imagenet:predict", {"instances": [[[[1, 2, 3, 4, 5]]]]}), "got [1, 1, 5]"),
        (client.post_json("/v1/models/imagenet:predict", {"instances": [[[300]]]}), "0-255"),
        (client.post_json("/v1/models/imagenet:predict", {"instances": [[[0.5]]]}), "integers"),
        (client.post_json("/v1/models/imagenet:predict", {"instances": ["/etc/passwd"]}), "never names a file"),
        (client.post_json("/v1/models/speech:predict", {"instances": ["/tmp/talk.wav"]}), "never names a file"),
        (client.post_json("/v1/models/speech:predict", {"instances": [[[0.1, 0.2]]]}), "waveform"),
        (client.post_json("/v1/models/sentiment:predict", {"instances": [42]}), "expected a text"),
        (client.post_json("/v1/models/sentiment:predict", {"instances": [{"texts": "x"}]}), "unknown input"),
        (client.post_json("/v1/models/sentiment:predict", {"instances": ["x"], "signature_name": "other"}),
         "signature_name"),
        (client.post_json("/v1/models/sentiment:predict", {"instances": ["x"], "errors": "ignore"}), '"errors"'),
        (client.post_json("/v1/models/sentiment:classify", {"instances": ["x"]}), ":predict"),
        (client.post_json("/classify?model=sentiment", {"image": b64(PNG7)}), "sentiment model"),
        (client.post_form("/classify", [("other", None, None, b"x")]), "file field"),
        (client.request("POST", "/classify", b"--x\r\nbroken", {"Content-Type": "multipart/form-data"}),
         "multipart"),
    ]
    for result, words in cases:
        assert_error(result, 400, words)
    assert client.post_json("/v1/models/imagenet:predict", {"instances": [b64(CAT)]})[0] == 200


def test_unknown_models_routes_and_methods(client):
    assert_error(client.get("/v1/models/nope"), 404, "no model named 'nope'", "imagenet")
    assert_error(client.post_json("/v1/models/nope:predict", {"instances": ["x"]}), 404, "nope")
    assert_error(client.get("/v1/models/imagenet/versions/7"), 404, "version")
    assert_error(client.post_json("/v1/models/imagenet/versions/2:predict", {"instances": [b64(CAT)]}), 404, "version")
    assert_error(client.get("/v2/anything"), 404, "no such endpoint")
    assert_error(client.get("/static/../../etc/passwd"), 404)
    assert_error(client.get("/static/index.py"), 404, "no such file")
    assert_error(client.request("DELETE", "/v1/models/imagenet"), 405, "DELETE")
    assert_error(client.get("/classify"), 405, "POST")


def test_size_caps_are_413(models):
    small = Limits(max_body_bytes=4096, max_file_bytes=1024, max_instances=3, max_text_chars=40,
                   max_audio_seconds=0.5)
    srv = served(load_models([parse_model_spec("image=digits"), ModelSpec("speech", "speech"),
                              ModelSpec("sentiment", "sentiment")]), limits=small)
    try:
        c = Client(srv)
        assert_error(c.post_json("/v1/models/sentiment:predict", {"instances": ["x" * 5000]}), 413, "4,096 bytes")
        assert_error(c.request("POST", "/classify", b"\0" * 5000, {"Content-Type": "image/png"}), 413, "limit")
        assert_error(c.post_json("/v1/models/sentiment:predict", {"instances": ["a", "b", "c", "d"]}), 413,
                     "4 instances", "limit of 3")
        assert_error(c.post_json("/v1/models/sentiment:predict", {"instances": ["y" * 41]}), 413, "41 characters")
        assert_error(c.post_json("/v1/models/digits:predict", {"instances": [b64(b"\0" * 2000)]}), 413, "1,024 bytes")
        assert_error(c.post_form("/classify", [("file", "big.png", "image/png", b"\0" * 2000)]), 413, "'big.png'",
                     "1,024")
        assert_error(c.post_json("/v1/models/speech:predict",
                                 {"instances": [{"waveform": [0] * 1000, "sample_rate": 1000}]}), 413, "0.5 s")
        # a recording over the length cap is refused from its header, before decoding: unusable input, 422
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.zeros(900, np.float32), 1000, format="WAV", subtype="PCM_U8")  # 0.9 s in 944 bytes
        assert_error(c.post_form("/transcribe", [("file", "long.wav", "audio/wav", buf.getvalue())]), 422,
                     "long.wav")
        code, _, body = c.post_json("/v1/models/sentiment:predict", {"instances": ["great"]})
        assert code == 200 and body["predictions"][0]["label"] == "positive"
        # chunked: no Content-Length, still stopped at the cap
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.putrequest("POST", "/v1/models/sentiment:predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        payload = json.dumps({"instances": ["z" * 6000]}).encode()
        conn.send(f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n")
        response = conn.getresponse()
        assert response.status == 413 and "error" in json.loads(response.read())
        conn.close()
    finally:
        srv.stop_thread()


def test_wrong_content_types_are_415(client):
    assert_error(client.request("POST", "/v1/models/imagenet:predict", b'{"instances": []}',
                                {"Content-Type": "text/plain"}), 415, "application/json")
    assert_error(client.request("POST", "/classify", b"hello", {"Content-Type": "text/plain"}), 415, "image/*")
    assert_error(client.post_form("/classify", [("file", "notes.txt", "text/plain", b"hello")]), 415, "'notes.txt'",
                 "text/plain")
    assert_error(client.post_form("/transcribe", [("file", "a.png", "image/png", PNG7)]), 415, "audio/*")
    assert_error(client.request("POST", "/sentiment", PNG7, {"Content-Type": "image/png"}), 415, "text/plain")
    assert_error(client.request("POST", "/transcribe", b"x"), 415, "without a Content-Type")
    assert client.post_json("/sentiment", {"text": "ok then"})[0] == 200


def test_unusable_inputs_are_422_with_one_message(client):
    assert_error(client.post_json("/v1/models/imagenet:predict", {"instances": [b64(CAT), b64(b"GIF89a broken")]}),
                 422, "instance 1:")
    assert_error(client.post_form("/classify", [("file", "shot.jpg", "image/jpeg", CAT[:4000])]), 422, "shot.jpg",
                 "truncated or corrupt")
    assert_error(client.post_form("/classify", [("file", "empty.png", "image/png", b"")]), 422, "empty.png")
    # the default image model (imagenet) refuses images under 32 px, naming the upload or the instance
    message = assert_error(client.post_form("/classify", [("file", "digit-7.png", "image/png", PNG7)]), 422)
    assert message == f"digit-7.png: {TOO_SMALL}"
    message = assert_error(client.post_json("/v1/models/imagenet:predict", {"instances": [b64(CAT), b64(PNG2)]}), 422)
    assert message == f"instance 1: {TOO_SMALL}"
    assert_error(client.post_form("/transcribe", [("file", "noise.wav", "audio/wav", b"RIFF0000WAVEjunk")]), 422,
                 "noise.wav")
    assert_error(client.post_json("/v1/models/speech:predict", {"instances": [b64(b"not audio at all")]}), 422,
                 "instance 0:")
    assert_error(client.post_json("/sentiment", {"text": "   "}), 422, "empty text")
    assert_error(client.post_json("/v1/models/translation:predict", {"instances": ["Save", ""]}), 422,
                 "instance 1: empty text")
    # nothing crashed: the next request of each model is served
    assert client.post_form("/classify", [("file", "c.jpg", "image/jpeg", CAT)])[2]["label"] == "Egyptian cat"
    assert client.post_form("/transcribe", [("file", "t.wav", "audio/wav", WAV)])[2]["text"] == "four two seven"


def test_a_full_queue_and_the_drain_are_503(digits):
    slow = ServedModel(ModelSpec("image", "slow"), [Slow(digits.predictor, 1.0)], max_queue=1)
    srv = served([slow])
    try:
        c = Client(srv)
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(
            c.post_json("/v1/models/slow:predict", {"instances": [b64(PNG7)]}))) for _ in range(3)]
        for t in threads:
            t.start()
            time.sleep(0.15)
        for t in threads:
            t.join()
        codes = sorted(r[0] for r in results)
        assert codes == [200, 200, 503], codes  # one predicting, one queued, the third refused
        assert_error(next(r for r in results if r[0] == 503), 503, "busy")
        srv.app[STATE].draining = True
        assert_error(c.get("/healthz"), 503, "shutting down")
        assert_error(c.post_json("/v1/models/slow:predict", {"instances": [b64(PNG7)]}), 503, "shutting down")
    finally:
        srv.stop_thread()


def test_a_model_failure_is_a_json_500_without_traceback(digits):
    class Broken(Slow):
        def records(self, items):
            raise RuntimeError("kaboom inside the model\nTraceback (most recent call last): ...")

    srv = served([ServedModel(ModelSpec("image", "broken"), [Broken(digits.predictor, 0)])])
    try:
        message = assert_error(Client(srv).post_json("/v1/models/broken:predict", {"instances": [b64(PNG7)]}), 500,
                               "broken")
        assert "kaboom" not in message
    finally:
        srv.stop_thread()


# --- conduct under load ----------------------------------------------------------------------------------
def test_concurrent_requests_are_batched(digits):
    model = ServedModel(ModelSpec("image", "digits", "digits"), [Slow(digits.predictor, 0.05)])
    srv = served([model])
    try:
        c = Client(srv)
        results: list = [None] * 24

        def call(i: int) -> None:
            results[i] = c.post_json("/v1/models/digits:predict", {"instances": [b64(PNG7 if i % 2 else PNG2)]})

        threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r[0] == 200 for r in results)
        assert [r[2]["predictions"][0]["label"] for r in results] == ["2", "7"] * 12  # each got its own record
        stats = model.batcher.stats
        assert stats.requests == 24 and stats.instances == 24
        assert stats.batches < 24 and stats.largest_batch > 1, stats
    finally:
        srv.stop_thread()


def test_a_slow_request_does_not_block_health_checks_or_other_models(models, digits):
    sentiment = next(m for m in models if m.name == "sentiment")
    srv = served([ServedModel(ModelSpec("image", "slow"), [Slow(digits.predictor, 3.0)]),
                  ServedModel(ModelSpec("sentiment", "sentiment"), [sentiment.predictor])])
    try:
        c = Client(srv)
        slow: list = []
        t = threading.Thread(target=lambda: slow.append(c.post_json("/v1/models/slow:predict",
                                                                    {"instances": [b64(PNG7)]})))
        t.start()
        time.sleep(0.3)
        for path in ("/healthz", "/v1/models/slow", "/v1/models/slow/metadata"):
            t0 = time.perf_counter()
            assert c.get(path, timeout=2)[0] == 200
            assert time.perf_counter() - t0 < 1.0
        t0 = time.perf_counter()
        assert c.post_json("/sentiment", {"text": "lovely"}, timeout=2)[2]["label"] == "positive"
        assert time.perf_counter() - t0 < 1.0
        assert not slow  # still running
        t.join()
        assert slow[0][0] == 200
    finally:
        srv.stop_thread()


def test_stop_drains_in_flight_requests(digits):
    srv = served([ServedModel(ModelSpec("image", "slow"), [Slow(digits.predictor, 1.5)])])
    c = Client(srv)
    result: list = []
    t = threading.Thread(target=lambda: result.append(c.post_json("/v1/models/slow:predict",
                                                                  {"instances": [b64(PNG7)]})))
    t.start()
    time.sleep(0.4)
    srv.stop_thread()
    t.join()
    assert result[0][0] == 200 and result[0][2]["predictions"][0]["label"] == "7"  # answered, not cut off
    with pytest.raises(OSError):
        c.get("/healthz", timeout=2)  # and the listener is closed


def test_workers_predict_side_by_side(digits):
    srv = served([ServedModel(ModelSpec("image", "two"), [Slow(digits.predictor, 0.8), Slow(digits.predictor, 0.8)])])
    try:
        c = Client(srv)
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(
            c.post_json("/v1/models/two:predict", {"instances": [b64(PNG7)]}))) for _ in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join()
        assert [r[0] for r in results] == [200, 200] and time.perf_counter() - t0 < 1.5  # not 1.6 s one after the other
    finally:
        srv.stop_thread()
    loaded = load_models([ModelSpec("sentiment", "s")], workers=2)[0]
    assert len(loaded.predictors) == 2 and loaded.predictors[0] is not loaded.predictors[1]
    assert loaded.metadata(Limits())["metadata"]["sensorium"]["batching"]["workers"] == 2


def test_a_busy_port_is_one_line(server):
    from sensorium.runtime.errors import SensoriumError

    with pytest.raises(SensoriumError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        Server([], host="127.0.0.1", port=server.port).start_in_thread()


def test_cors_headers_only_when_asked(client, models):
    code, head, _ = client.get("/v1/models/imagenet", headers={"Origin": "https://evil.example"})
    assert code == 200 and not any(k.startswith("access-control") for k in head)
    assert_error(client.request("OPTIONS", "/v1/models/imagenet:predict", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}), 405)

    sentiment = next(m for m in models if m.name == "sentiment")
    srv = served([ServedModel(ModelSpec("sentiment", "sentiment"), [sentiment.predictor])],
                 cors_origins=["https://app.example.org"])
    try:
        c = Client(srv)
        code, head, _ = c.post_json("/sentiment", {"text": "nice"})
        assert "access-control-allow-origin" not in head
        code, head, _ = c.request("POST", "/sentiment", b'{"text": "nice"}', {
            "Content-Type": "application/json", "Origin": "https://app.example.org"})
        assert code == 200 and head["access-control-allow-origin"] == "https://app.example.org"
        code, head, _ = c.request("OPTIONS", "/v1/models/sentiment:predict", headers={
            "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST"})
        assert code == 204 and "POST" in head["access-control-allow-methods"]
        code, head, _ = c.request("GET", "/v1/models/sentiment", headers={"Origin": "https://other.example"})
        assert code == 200 and "access-control-allow-origin" not in head
    finally:
        srv.stop_thread()


def test_one_access_log_line_per_request_with_latency(client, caplog):
    with caplog.at_level(logging.INFO, logger="sensorium.serve.access"):
        client.get("/healthz")
        client.post_json("/v1/models/sentiment:predict", {"instances": ["a", "b"]})
        client.get("/v1/models/nope")
        time.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name == "sensorium.serve.access"]
    assert len(lines) == 3, lines
    assert re.fullmatch(r'127\.0\.0\.1 "GET /healthz" 200 \d+B \d+\.\dms', lines[0]), lines[0]
    assert re.search(r'"POST /v1/models/sentiment:predict" 200 \d+B \d+\.\dms instances=2$', lines[1]), lines[1]
    assert '"GET /v1/models/nope" 404' in lines[2]


def test_the_page_and_its_files(client):
    code, head, body = client.get("/")
    assert code == 200 and head["content-type"].startswith("text/html")
    assert "default-src 'none'" in head["content-security-policy"] and head["x-content-type-options"] == "nosniff"
    assert client.get("/nope")[1]["x-content-type-options"] == "nosniff"  # error answers too
    page = body.decode()
    for needle in ('role="tablist"', 'id="tab-image"', 'id="tab-speech"', 'id="tab-sentiment"',
                   'id="tab-translation"', '<label for="image-file"', '<label for="sentiment-text"',
                   '<label for="translation-text"', 'role="alert"'):
        assert needle in page
    assert "http://" not in page and "https://" not in page  # no CDN: everything comes from this server
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        code, head, body = client.get(f"/static/{name}")
        assert code == 200 and head["content-type"].startswith(kind) and body
        assert b"https://" not in body and b"http://" not in body


# --- the command line ---------------------------------------------------------------------------------------
def test_model_specs():
    assert default_specs() == [ModelSpec("image", "imagenet"), ModelSpec("speech", "speech"),
                               ModelSpec("sentiment", "sentiment"), ModelSpec("translation", "translation")]
    assert parse_model_spec("image=digits") == ModelSpec("image", "digits", "digits")
    assert parse_model_spec("classify=imagenet") == ModelSpec("image", "imagenet", "imagenet")
    assert parse_model_spec("classify=runs/pets") == ModelSpec("image", "image", "runs/pets")
    assert parse_model_spec("translate:ui=runs/x/model.tflite") == ModelSpec("translation", "ui", "runs/x/model.tflite")
    for bad in ("image", "=x", "image=", "gan=runs/g", "nope=x", "image:bad name=x", "image:/etc=x"):
        with pytest.raises(UsageError):
            parse_model_spec(bad)
    with pytest.raises(UsageError, match="two models are named"):
        load_models([ModelSpec("image", "a"), ModelSpec("sentiment", "a")])


def test_serve_help_and_usage_errors():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "sensorium", "serve", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--model TASK[:NAME]=ARTIFACT" in proc.stdout and "--cors" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sensorium", "serve", "--model", "nope=x"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "unknown task 'nope'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "sensorium", "serve", "--model", "image=/no/such/model.tflite"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no such model file" in proc.stderr, proc.stderr


# --- the real command: edge-only install, SIGTERM -----------------------------------------------------------
BLOCK_TENSORFLOW = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "tensorflow_text", "tensorflow_hub"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, _Block())
from sensorium.apps.main import main
code = main(sys.argv[1:])
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
sys.exit(code)
"""


def test_sigterm_drains_in_flight_requests_then_exits_0_without_tensorflow(tmp_path):
    """`sensorium serve` as a process, with TensorFlow blocked: it serves the bundled defaults; on SIGTERM a
    long transcription in flight is still answered, the listener closes, and the exit code is 0."""
    import signal
    import subprocess
    import sys

    import soundfile as sf

    wave, rate = sf.read(io.BytesIO(WAV), dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, np.tile(wave, 100), rate, format="WAV", subtype="PCM_16")  # 2 minutes: about a second's work
    proc = subprocess.Popen([sys.executable, "-c", BLOCK_TENSORFLOW, "serve", "--port", "0"], cwd=tmp_path,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 120
        while not any(" on http://127.0.0.1:" in line for line in lines) and time.time() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        port = int(re.search(r"on http://127\.0\.0\.1:(\d+)/", "".join(lines)).group(1))
        client = Client.__new__(Client)
        client.host, client.port = "127.0.0.1", port
        code, _, record = client.post_form("/classify", [("file", "cat.jpg", "image/jpeg", CAT)])
        assert code == 200 and record["label"] == "Egyptian cat"  # the default image model: imagenet

        result: list = []
        t = threading.Thread(target=lambda: result.append(
            client.post_form("/transcribe", [("file", "long.wav", "audio/wav", buf.getvalue())])))
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        t.join(60)
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
    code, _, record = result[0]
    assert code == 200 and record["input"] == "long.wav" and record["text"].startswith("four two seven")
    assert len(record["segments"]) > 1 and record["duration"] > 100
    log = "".join(lines)
    assert "SIGTERM received" in log and "draining: 1 request(s) in flight" in log and "stopped" in log, log
    assert '"POST /transcribe" 200' in log and "Traceback" not in log
    with pytest.raises(OSError):
        client.get("/healthz", timeout=2)


def test_without_the_serve_extra_the_command_says_what_to_install():
    import subprocess
    import sys

    code = ("import sys\n"
            "class _Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'aiohttp':\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, _Block())\n"
            "from sensorium.apps.main import main\n"
            "sys.exit(main(['serve']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        'error: sensorium serve needs the serve extra: pip install "sensorium[serve]"')


def test_a_keras_run_directory_is_served_too():
    """A run directory (its model.keras, on TensorFlow: sensorium[full]) behind the same API."""
    pytest.importorskip("tensorflow")
    model = load_models([parse_model_spec(f"classify:mnist={ROOT / 'assets' / 'models' / 'mnist'}")])[0]
    assert model.predictor.runtime == "keras" and model.summary()["file"] == "mnist"
    srv = served([model])
    try:
        code, _, body = Client(srv).post_json("/v1/models/mnist:predict", {"instances": [b64(PNG7), b64(PNG2)]})
        assert code == 200 and [r["label"] for r in body["predictions"]] == ["7", "2"]
    finally:
        srv.stop_thread()
