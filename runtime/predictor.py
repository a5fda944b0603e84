"""What every task's predictor shares: the Python API's calling convention and the one way to load one.

A predictor is called on one input or a list of them and returns the records the CLIs print with
`--json` (CONTRACTS.md): `{"input", "ok", ...task fields}` or `{"input", "ok": False, "error"}`.

- `predictor(x)` -> one record; `predictor([x, y])` -> a list, in order. Bad input raises
  `InputError` (`errors="raise"`, the default) or comes back as an `ok: False` record
  (`errors="record"`); the other inputs are still predicted.
- `predictor.records(items)` is the streaming form the CLIs use: inputs are taken a chunk at a time
  and their records yielded as soon as the chunk is done, so a long stream needs bounded memory.
- Any failure while handling one input becomes that input's record: a chunk that fails as a whole
  is retried input by input.
- `Predictor.load(model)` is the one artifact dispatch: a `.tflite` runs on this runtime (no
  TensorFlow); a run directory, `.keras` file or SavedModel goes to the task's Keras back end
  (`keras_backend`, in `sensorium.pipelines.<task>.predict`, which needs `sensorium[full]`).
  `model=None` or a bundled model's name (`BUNDLED`) means a model that ships with Sensorium.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sensorium.runtime.errors import InputError, ModelError, SensoriumError, UsageError

log = logging.getLogger(__name__)

Record = dict[str, Any]
MAX_TEXT_CHARS = 1_000_000  # a longer "text" is a broken file, not a text (models read max_length tokens anyway)


@dataclass(frozen=True)
class Bundled:
    """A model that ships with Sensorium: its run directory under `sensorium.assets` and the `.tflite`
    inside it that the edge runtime uses."""

    name: str
    task: str
    folder: str  # under sensorium/assets
    edge_file: str  # relative to the folder
    description: str


BUNDLED: dict[str, Bundled] = {b.name: b for b in (
    Bundled("imagenet", "image", "models/imagenet", "exports/model-float16.tflite",
            "photos: the 1,000 ImageNet-1k classes (EfficientNet-Lite0, float16)"),
    Bundled("digits", "image", "models/mnist", "exports/model-int8.tflite",
            "handwritten digits 0-9 (MNIST-trained ResNet, int8)"),
    Bundled("speech", "speech", "models/speech", "exports/model-float32.tflite",
            "English digits and commands (log-mel + conv + BiLSTM, CTC)"),
    Bundled("sentiment", "sentiment", "models/sentiment", "exports/model-float32.tflite",
            "English tweets: negative / neutral / positive (Transformer encoder)"),
    Bundled("translation", "translation", "models/translation", "exports/model-dynamic.tflite",
            "English to German UI strings, placeholders kept (Transformer encoder-decoder)"),
)}
DEFAULTS = {"image": "imagenet", "speech": "speech", "sentiment": "sentiment", "translation": "translation"}


def assets_dir() -> Path:
    """The installed `sensorium.assets` folder (found without importing it)."""
    spec = importlib.util.find_spec("sensorium.assets")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the bundled models are missing from this installation (no sensorium.assets)")
    return Path(list(spec.submodule_search_locations)[0])


def bundled_model(task: str, name: str | None = None) -> tuple[Bundled, Path]:
    """The bundled model `name` (default: the task's default) and its run directory."""
    name = name or DEFAULTS.get(task)
    if name is None:
        raise ModelError(f"there is no bundled {task} model; pass a model")
    entry = BUNDLED[name]
    if entry.task != task:
        raise ModelError(f"the bundled model '{name}' is a {entry.task} model, not {task}")
    return entry, assets_dir() / entry.folder


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message's first line, else its type."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def check_text(text: Any) -> str | None:
    """Why `text` cannot be given to a text model, or None."""
    if not isinstance(text, str):
        return f"expected a text (str), got {type(text).__name__}"
    if not text.strip():
        return "empty text"
    if len(text) > MAX_TEXT_CHARS:
        return f"text longer than {MAX_TEXT_CHARS:,} characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable bytes of argv arrive as lone surrogates
        return f"not valid UTF-8 (undecodable byte at character {exc.start})"
    return None


def length_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Indices of inputs grouped by similar length (stable), `batch_size` at a time: padding to the
    longest of a batch then wastes little."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), max(1, batch_size)):
        yield order[start : start + batch_size]


def pad_rows(rows: Sequence[Sequence[Any]], dtype: Any) -> np.ndarray:
    """Rows of different lengths -> one (B, max length) array, zero-padded at the end."""
    out = np.zeros((len(rows), max((len(r) for r in rows), default=0)), dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


LINGER_S = 0.05  # a stream's partial chunk waits at most this long for more input


class _Raised:
    """An exception raised by a stream's iterator, carried to the consumer in order."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def chunks(items: Iterable[Any], size: int, linger: float) -> Iterator[list[Any]]:
    """`items` in lists of at most `size`. A list or tuple is cut directly; any other iterable is read by
    a background thread through a bounded queue, and a partial chunk is handed on once no item has
    arrived for `linger` seconds (an idle pipe does not hold back what it already sent). An exception
    of the iterator is raised after the items that came before it."""
    size = max(1, int(size))
    if isinstance(items, (list, tuple)):
        for start in range(0, len(items), size):
            yield list(items[start : start + size])
        return
    import queue
    import threading

    done = object()
    pipe: queue.Queue[Any] = queue.Queue(maxsize=2 * size)

    def produce() -> None:
        try:
            for item in items:
                pipe.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            pipe.put(_Raised(exc))
        finally:
            pipe.put(done)

    threading.Thread(target=produce, name="sensorium-input", daemon=True).start()
    chunk: list[Any] = []
    while True:
        try:
            item = pipe.get(timeout=linger) if chunk else pipe.get()
        except queue.Empty:
            yield chunk
            chunk = []
            continue
        if item is done:
            break
        if isinstance(item, _Raised):
            if chunk:
                yield chunk
            raise item.exc
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class Item:
    """One input: its value, the name its record reports as "input" (a path, the text itself, or its
    index in the call), and a reason it cannot be used when that is known before prediction."""

    value: Any
    name: Any
    error: str | None = None


class Predictor:
    """Base of the task predictors (`ImageClassifier`, `SpeechRecognizer`, `TextClassifier`,
    `Translator`). Subclasses set `task`, `keras_backend` and `options`, and implement
    `from_tflite` and `predict_items`."""

    task: ClassVar[str]
    keras_backend: ClassVar[str]  # "module:function(path, **options) -> predictor" (needs TensorFlow)
    options: ClassVar[dict[str, Any]] = {}  # what `configure` may set, with the defaults
    chunk_size: ClassVar[int] = 64  # inputs handled together (the model batches within a chunk)

    source: str  # the model file or folder

    # --- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, model: str | Path | None = None, *, runtime: str = "auto", num_threads: int | None = None,
             **options: Any) -> Predictor:
        """The predictor of `model`: a `.tflite`, run directory, `.keras`, SavedModel or a bundled
        model's name; None is the task's bundled default.

        runtime: "edge" runs a `.tflite` here (a bundled model's packed `.tflite`); "keras" needs
        TensorFlow; "auto" is "edge" for `.tflite` files and bundled models, else "keras"."""
        if runtime not in ("auto", "edge", "keras"):
            raise UsageError(f"runtime must be auto, edge or keras, not {runtime!r}")
        path, bundled = cls._resolve(model)
        edge = runtime == "edge" or (runtime == "auto" and (bundled is not None or path.suffix == ".tflite"))
        if bundled is not None and edge:
            path = path / bundled.edge_file
        elif bundled is not None and not (path / "model.keras").is_file():
            raise ModelError(f"the bundled {bundled.name} model's Keras files are not in this installation (a "
                             "pip-installed Sensorium ships its .tflite only): use the edge runtime, or a "
                             "repository checkout for the run directory")
        if edge:
            if path.is_dir():
                raise ModelError(f"{path}: the edge runtime takes a .tflite file")
            predictor = cls.from_tflite(path, num_threads=num_threads)
        else:
            module, _, name = cls.keras_backend.partition(":")
            predictor = getattr(importlib.import_module(module), name)(path)
        return predictor.configure(**options)

    @classmethod
    def _resolve(cls, model: str | Path | None) -> tuple[Path, Bundled | None]:
        if model is None:
            entry, path = bundled_model(cls.task)
            return path, entry
        path = Path(model).expanduser()
        if not path.exists() and str(model) in BUNDLED:
            entry, path = bundled_model(cls.task, str(model))
            return path, entry
        return path, None

    @classmethod
    def from_tflite(cls, path: str | Path, *, num_threads: int | None = None) -> Predictor:
        raise NotImplementedError

    def configure(self, **options: Any) -> Predictor:
        """Set call options (`top_k`, `beam`, ...; see `options`); unknown names are a UsageError."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise UsageError(f"{self.task} predictors take no option {', '.join(unknown)} (options: {known})")
        for key, value in options.items():
            if value is not None:
                setattr(self, key, value)
        return self

    # --- calling ------------------------------------------------------------------------------
    def is_single(self, inputs: Any) -> bool:
        """Whether `inputs` is one input rather than a list of them."""
        return not isinstance(inputs, (list, tuple))

    def item_name(self, value: Any, index: int) -> Any:
        """What a record reports as "input": paths and texts as given (undecodable bytes of a command
        line, which arrive as lone surrogates, replaced), other values by their index."""
        if isinstance(value, (str, Path)):
            return str(value).encode("utf-8", "replace").decode("utf-8")
        return index

    def __call__(self, inputs: Any, *, errors: str = "raise") -> Record | list[Record]:
        """Records for one input or a list of inputs (see the module docstring)."""
        if errors not in ("raise", "record"):
            raise UsageError(f"errors must be 'raise' or 'record', not {errors!r}")
        single = self.is_single(inputs)
        values = [inputs] if single else list(inputs)
        records = list(self.records(Item(v, self.item_name(v, i)) for i, v in enumerate(values)))
        if errors == "raise":
            for index, record in enumerate(records):
                if not record["ok"]:
                    raise InputError(record["error"], input=record["input"], index=index)
        return records[0] if single else records

    def records(self, items: Iterable[Item | Any]) -> Iterator[Record]:
        """One record per item, in order, a chunk at a time (streaming; bounded memory). From a stream
        (any iterator), a partial chunk is predicted as soon as no new input has come for `LINGER_S`,
        so a line typed into a pipe is answered at once."""
        index = 0
        for chunk in chunks(items, self.chunk_size, LINGER_S):
            named = []
            for item in chunk:
                named.append(item if isinstance(item, Item) else Item(item, self.item_name(item, index)))
                index += 1
            yield from self._chunk_records(named)

    def _chunk_records(self, chunk: list[Item]) -> list[Record]:
        try:
            return self._checked(chunk, self.predict_items(chunk))
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - isolate the item(s) that caused it
            if len(chunk) == 1:
                return [error_record(chunk[0], one_line(exc) if isinstance(exc, SensoriumError)
                                     else f"{type(exc).__name__}: {one_line(exc)}")]
            log.debug("a chunk of %d inputs failed (%s); retrying one by one", len(chunk), one_line(exc))
            return [record for item in chunk for record in self._chunk_records([item])]

    @staticmethod
    def _checked(chunk: list[Item], records: list[Record]) -> list[Record]:
        if len(records) != len(chunk):
            raise RuntimeError(f"{len(records)} records for {len(chunk)} inputs")
        return records

    def predict_items(self, items: list[Item]) -> list[Record]:
        """Records for a chunk of items (items with an `error` get an error record)."""
        raise NotImplementedError


def error_record(item: Item, error: str) -> Record:
    return {"input": item.name, "ok": False, "error": error}


def ok_record(item: Item, **fields: Any) -> Record:
    return {"input": item.name, "ok": True, **fields}
