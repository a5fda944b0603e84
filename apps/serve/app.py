"""The routes of `sensorium serve`.

TF Serving's REST API (same URLs and envelope, so a client can move to TF Serving and back):

    GET  /v1/models/NAME[/versions/V]             status and version
    GET  /v1/models/NAME[/versions/V]/metadata    signature, labels, input spec
    POST /v1/models/NAME[/versions/V]:predict     {"instances": [...]} -> {"predictions": [records]}

Ours: `GET /v1/models` (every served model), `GET /healthz`, the convenience endpoints `POST /classify`,
`/transcribe`, `/sentiment` and `/translate` (a multipart file or text field, JSON, or a raw image/audio/
text body; one input, answered with its record) and the demo page at `/`. Each prediction is the task's
JSON record, the same as a CLI's `--json` line.
"""
from __future__ import annotations

import asyncio
import importlib.resources
import json
from collections.abc import Sequence
from typing import Any

from aiohttp import MultipartReader, web

from sensorium.apps.serve.errors import ApiError
from sensorium.apps.serve.http import (
    INSTANCES,
    STATE,
    ServerState,
    conduct,
    cors,
    error_response,
    errors,
    json_response,
)
from sensorium.apps.serve.inputs import (
    INPUT_NAMES,
    Limits,
    decode_audio,
    error_message,
    instance_item,
    predict_request,
    tidy_error,
    upload_name,
)
from sensorium.runtime.predictor import Item, Record

OFFLOAD_BYTES = 256 * 1024  # bodies larger than this are parsed off the event loop
STATIC_TYPES = {"app.js": "text/javascript", "style.css": "text/css"}
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
               "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
ENDPOINT_TASKS = {"classify": "image", "transcribe": "speech", "sentiment": "sentiment", "translate": "translation"}
# What an uploaded file may be declared as, per task (browsers send application/octet-stream when unsure).
FILE_TYPES = {"image": ("image/",), "speech": ("audio/", "video/webm", "video/ogg", "application/ogg")}
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded")  # curl -d sends the latter (TF Serving's docs)


# --- shared steps ---------------------------------------------------------------------------------
def _model(request: web.Request, name: str, version: str | None = None) -> Any:
    state = request.app[STATE]
    model = state.models.get(name)
    if model is None:
        served = ", ".join(sorted(state.models)) or "none"
        raise ApiError(404, f"no model named '{name[:100]}' is served (served: {served})")
    if version is not None and version != model.version:
        raise ApiError(404, f"model '{name}' has no version '{version[:20]}' (served: version {model.version})")
    return model


async def _read_body(request: web.Request) -> bytes:
    limit = request.app[STATE].limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the request body ({request.content_length:,} bytes) is over the limit of {limit:,} bytes")
    return await request.read()  # the Application's client_max_size stops a body without Content-Length


def _loads(body: bytes) -> Any:
    if not body.strip():
        raise ApiError(400, "the request body is empty (expected JSON)")
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(400, "the JSON body is nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON ({str(exc)[:120]})") from None


async def _offload(size: int, fn: Any, *args: Any) -> Any:
    """`fn(*args)` in a thread when the body is large (parsing megabytes would stall the event loop)."""
    return await asyncio.to_thread(fn, *args) if size > OFFLOAD_BYTES else fn(*args)


async def _records(request: web.Request, model: Any, items: list[Item]) -> list[Record]:
    request[INSTANCES] = len(items)
    if model.task == "speech" and any(isinstance(item.value, bytes) for item in items):
        items = await asyncio.to_thread(decode_audio, items, request.app[STATE].limits)
    return await model.batcher.predict(items)


# --- TF Serving's API -------------------------------------------------------------------------------
async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return json_response({"models": [m.summary() for m in state.models.values()]})


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.draining:
        return error_response(503, "the server is shutting down")
    return json_response({"status": "ok", "models": sorted(state.models)})


async def model_status(request: web.Request) -> web.Response:
    model = _model(request, request.match_info["name"], request.match_info.get("version"))
    return json_response(model.status(request.app[STATE].draining))


async def model_metadata(request: web.Request) -> web.Response:
    model = _model(request, request.match_info["name"], request.match_info.get("version"))
    return json_response(model.metadata(request.app[STATE].limits))


async def predict(request: web.Request) -> web.Response:
    """`POST /v1/models/NAME[/versions/V]:predict`."""
    target = request.match_info["target"]
    before, colon, verb = target.rpartition(":")
    if not colon or not before:
        raise ApiError(404, f"POST {request.path[:200]}: expected .../NAME:predict or .../versions/V:predict")
    if verb != "predict":
        raise ApiError(400 if verb in ("classify", "regress") else 404,
                       f"':{verb[:20]}' is not served; use :predict (each prediction is the task's record)")
    name, version = (request.match_info["name"], before) if "name" in request.match_info else (before, None)
    model = _model(request, name, version)
    content_type = request.headers.get("Content-Type")
    if content_type is not None and request.content_type not in JSON_TYPES:
        raise ApiError(415, f"a :predict body is JSON (Content-Type: application/json), not {request.content_type}")
    body = await _read_body(request)
    limits = request.app[STATE].limits

    def parse() -> tuple[list[Item], str, str]:
        rows, key, mode = predict_request(_loads(body), limits, model.task)
        return [instance_item(model.task, value, i, limits) for i, value in enumerate(rows)], key, mode

    items, key, mode = await _offload(len(body), parse)
    records = await _records(request, model, items)
    labels = [f"instance {i}" for i in range(len(records))]
    if mode == "raise":
        for record, label in zip(records, labels):
            if not record["ok"]:
                raise ApiError(422, error_message(record, label))
    return json_response({key: [tidy_error(r, label) for r, label in zip(records, labels)]})


# --- the convenience endpoints ------------------------------------------------------------------------
async def _read_part(part: Any, cap: int, what: str, total: list[int], limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = await part.read_chunk(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        total[0] += len(chunk)
        if total[0] > limit:
            raise ApiError(413, f"the request body is over the limit of {limit:,} bytes")
        if size > cap:
            raise ApiError(413, f"{what} is over the limit of {cap:,} bytes")
        chunks.append(chunk)


def _check_file_type(task: str, content_type: str, label: str, endpoint: str) -> None:
    if content_type in ("", "application/octet-stream") or content_type.startswith(FILE_TYPES[task]):
        return
    wanted = "an image (image/*)" if task == "image" else "a recording (audio/*)"
    raise ApiError(415, f"{label} is {content_type}; /{endpoint} takes {wanted}")


async def _form_item(request: web.Request, task: str, endpoint: str) -> Item:
    """The one input of a multipart body: a file field (`file`, or the input's name) or a `text` field."""
    limits = request.app[STATE].limits
    text_task = task in ("sentiment", "translation")
    fields = ("text",) if text_task else ("file", *INPUT_NAMES[task])
    reader = await request.multipart()
    total, parts, found = [0], 0, None
    while True:
        part = await reader.next()
        if part is None:
            break
        parts += 1
        if parts > limits.max_parts:
            raise ApiError(400, f"more than {limits.max_parts} parts in the form")
        if isinstance(part, MultipartReader):
            raise ApiError(400, "nested multipart bodies are not taken")
        if part.name not in fields or found is not None:
            await _read_part(part, limits.max_body_bytes, "a form field", total, limits.max_body_bytes)
            continue
        if text_task:
            data = await _read_part(part, 4 * limits.max_text_chars, "the text", total, limits.max_body_bytes)
            try:
                text = data.decode(part.get_charset("utf-8"))
            except (UnicodeDecodeError, LookupError):
                raise ApiError(400, "the text field is not valid UTF-8") from None
            found = instance_item(task, text, 0, limits, where="the text")
        else:
            label = upload_name(part.filename, "upload")
            _check_file_type(task, part.headers.get("Content-Type", "").split(";")[0].strip().lower(), f"'{label}'",
                             endpoint)
            found = Item(await _read_part(part, limits.max_file_bytes, f"'{label}'", total, limits.max_body_bytes),
                         label)
    if found is None:
        wanted = "a text field 'text'" if text_task else "a file field 'file'"
        raise ApiError(400, f"the form has no input: send {wanted}")
    return found


async def _one_item(request: web.Request, task: str, endpoint: str) -> Item:
    """The input of a convenience request, by its Content-Type."""
    limits = request.app[STATE].limits
    content_type = request.content_type if "Content-Type" in request.headers else ""
    text_task = task in ("sentiment", "translation")
    if content_type == "multipart/form-data":
        if request.content_length is not None and request.content_length > limits.max_body_bytes:
            raise ApiError(413, f"the request body ({request.content_length:,} bytes) is over the limit of "
                                f"{limits.max_body_bytes:,} bytes")
        try:
            return await _form_item(request, task, endpoint)
        except (ValueError, AssertionError, RuntimeError) as exc:  # aiohttp's multipart reader on a broken body
            raise ApiError(400, f"malformed multipart body ({str(exc)[:120] or type(exc).__name__})") from None
    if content_type == "application/json":
        body = await _read_body(request)
        return await _offload(len(body), lambda: instance_item(task, _loads(body), 0, limits, where="the body"))
    if text_task and content_type in ("text/plain", "application/x-www-form-urlencoded"):
        body = await _read_body(request)
        if content_type == "text/plain":
            try:
                text = body.decode(request.charset or "utf-8")
            except (UnicodeDecodeError, LookupError):
                raise ApiError(400, "the text body is not valid UTF-8") from None
        else:
            from urllib.parse import parse_qs

            text = (parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get("text") or [None])[0]
            if text is None:
                raise ApiError(400, "the form has no input: send a field 'text'")
        return instance_item(task, text, 0, limits, where="the text")
    if not text_task and content_type:
        _check_file_type(task, content_type, "the body", endpoint)
        body = await _read_body(request)
        if len(body) > limits.max_file_bytes:
            raise ApiError(413, f"the body ({len(body):,} bytes) is over the limit of {limits.max_file_bytes:,} bytes")
        return Item(body, 0)
    kinds = ("multipart/form-data (a field 'text'), application/json ({\"text\": ...}) or text/plain" if text_task
             else f"multipart/form-data (a file field 'file'), application/json ({{\"{INPUT_NAMES[task][0]}\": "
                  f"{{\"b64\": ...}}}}) or the file itself as the body ({FILE_TYPES[task][0]}*)")
    raise ApiError(415, f"/{endpoint} takes {kinds}, not {content_type or 'a body without a Content-Type'}")


def convenience(endpoint: str) -> Any:
    """The handler of `POST /classify` (and the others): one input in, its record out (422 if it fails)."""
    task = ENDPOINT_TASKS[endpoint]

    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        name = request.query.get("model")
        model = _model(request, name) if name else state.first_of(task)
        if model is None:
            raise ApiError(404, f"no {task} model is served (start the server with --model {task}=ARTIFACT)")
        if model.task != task:
            raise ApiError(400, f"model '{model.name}' is a {model.task} model; /{endpoint} takes a {task} model")
        item = await _one_item(request, task, endpoint)
        record = (await _records(request, model, [item]))[0]
        if not record["ok"]:
            label = item.name if isinstance(item.name, str) and task in FILE_TYPES else None
            raise ApiError(422, error_message(record, label))
        return json_response(record)

    handler.__name__ = endpoint
    return handler


# --- the page -------------------------------------------------------------------------------------
def _static_files() -> dict[str, bytes]:
    folder = importlib.resources.files("sensorium.apps.serve").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in ("index.html", *STATIC_TYPES)}


def page_handlers() -> tuple[Any, Any]:
    files = _static_files()  # read once: a request can only pick one of these names

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=files["index.html"], content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": PAGE_POLICY})

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in STATIC_TYPES:
            raise ApiError(404, f"no such file: /static/{name[:100]}")
        return web.Response(body=files[name], content_type=STATIC_TYPES[name], charset="utf-8")

    return index, static


# --- the application ------------------------------------------------------------------------------
def create_app(models: Sequence[Any], limits: Limits | None = None,
               cors_origins: Sequence[str] = ()) -> web.Application:
    """The aiohttp application serving `models` (ServedModel objects; see `models.load_models`)."""
    limits = limits or Limits()
    middlewares = [*([cors(cors_origins)] if cors_origins else []), conduct, errors]
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=middlewares)
    app[STATE] = ServerState(list(models), limits)
    index, static = page_handlers()
    app.add_routes([
        web.get("/", index),
        web.get("/static/{file}", static),
        web.get("/healthz", health),
        web.get("/v1/models", list_models),
        web.get("/v1/models/{name}", model_status),
        web.post("/v1/models/{target}", predict),
        web.get("/v1/models/{name}/metadata", model_metadata),
        web.get("/v1/models/{name}/versions/{version}", model_status),
        web.post("/v1/models/{name}/versions/{target}", predict),
        web.get("/v1/models/{name}/versions/{version}/metadata", model_metadata),
        *(web.post(f"/{endpoint}", convenience(endpoint)) for endpoint in ENDPOINT_TASKS),
    ])

    async def close_models(app: web.Application) -> None:
        for model in app[STATE].models.values():
            await model.batcher.close()

    app.on_cleanup.append(close_models)
    return app
