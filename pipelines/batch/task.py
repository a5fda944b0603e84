"""What a task gives the batch evaluation engine: its items, its model, one record per item, its
metrics from the records, and its report.

The engine (`job.py`, and the Beam pipeline in `beam.py`) knows nothing of images or text. A task's
`BatchTask` lists the items of a data spec (cheap: paths, texts, references; nothing decoded), loads
one item (decoding happens here, so an unreadable file fails that item only), predicts a batch of
loaded inputs with the model, and turns the per-item records back into the task's metrics. Metrics
are computed from the records alone, never from state kept in memory, so a resumed job, merged
shards and a Beam run all give the same numbers as one uninterrupted run.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.artifacts import Artifact


@dataclass(frozen=True)
class EvalItem:
    """One item of an evaluation: its position in the whole (unsharded) item list, its id, what
    `BatchTask.load` reads (a path, a text, an array: picklable, for Beam) and its reference."""

    index: int
    id: str
    payload: Any
    reference: Any  # JSON-serialisable: a label name, a transcript, a target sentence


@dataclass
class ItemList:
    """The items of a data spec's split, and the ones that failed while listing (empty text, ...)."""

    data: str  # the data spec
    split: str
    items: list[EvalItem]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item id, one-line error)


class BatchTask(ABC):
    """A task's side of batch evaluation. `options` holds the task's evaluation options (top_k, beam);
    `context` what the metrics need besides the records (labels), stored in the job's `job.json` so
    that merging shards needs no model."""

    task: str = ""
    kind: str = "item"  # the unit in progress bars and reports ("image", "utterance", "text", "sentence")

    def __init__(self, options: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self.context = dict(context or {})

    # --- listing (no model loaded) ---
    @abstractmethod
    def list_items(self, artifact: Artifact, data: str | None) -> ItemList:
        """The items of `data` (default: the run's data @test); also fills `self.context`."""

    # --- inference (on the machine that runs the model) ---
    @abstractmethod
    def load_model(self, artifact: Artifact) -> Any:
        """The task's predictor for a run directory, .keras, SavedModel or .tflite."""

    @abstractmethod
    def load(self, item: EvalItem) -> Any:
        """Read and decode one item's input; raise a SensoriumError (one line) when it is unusable."""

    @abstractmethod
    def predict(self, model: Any, inputs: list[Any]) -> list[dict[str, Any]]:
        """The task's JSON fields for each input (`label`/`scores`, `text`, `translation`, ...)."""

    # --- results (records only) ---
    @abstractmethod
    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The task's metrics from the successful records (sorted by index)."""

    def report(self, records: list[dict[str, Any]], metrics: dict[str, Any], dest: Path) -> list[str]:
        """Write plots into `dest/plots` and return the report's task sections (Markdown lines)."""
        return []


def record_for(item: EvalItem, fields: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """One JSON Lines record: index, id, ok, the reference, and the prediction's fields or the error."""
    record: dict[str, Any] = {"index": item.index, "id": item.id, "ok": error is None, "reference": item.reference}
    if error is not None:
        record["error"] = error
    else:
        record.update(fields or {})
    return record


def error_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as an item's one-line error: our own errors as they are, any other prefixed with its
    type (a bug or a library's complaint about this item, e.g. `ValueError: ...`)."""
    from sensorium.runtime.errors import SensoriumError

    text = " ".join(str(exc).split())
    if not isinstance(exc, SensoriumError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dumps(record: dict[str, Any]) -> str:
    """A record as one JSON line (no NaN: a non-finite number is an error here, not silently written)."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table; `|` and newlines inside cells are escaped."""
    def cell(v: Any) -> str:
        text = f"{v:.4f}" if isinstance(v, float) else str(v)
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")[:200]

    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


__all__ = ["BatchTask", "EvalItem", "ItemList", "dumps", "error_line", "markdown_table", "record_for"]
