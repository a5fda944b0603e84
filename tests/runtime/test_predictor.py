"""The predictors' shared calling convention, per-item isolation, streaming and model resolution."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from sensorium.runtime.errors import DataError, InputError, ModelError, UsageError
from sensorium.runtime.predictor import (
    BUNDLED,
    Item,
    Predictor,
    bundled_model,
    check_text,
    error_record,
    length_batches,
    ok_record,
    pad_rows,
)


@dataclass
class Upper(Predictor):
    """A toy predictor: upper-cases texts; "boom" breaks the whole chunk (as a model error would)."""

    source: str = "toy"
    calls: int = 0
    suffix: str = ""

    task: ClassVar[str] = "sentiment"
    keras_backend: ClassVar[str] = "nowhere:load"
    options: ClassVar[dict[str, Any]] = {"suffix": ""}
    chunk_size: ClassVar[int] = 3

    def predict_items(self, items: list[Item]) -> list[dict]:
        self.calls += 1
        if any(i.value == "boom" for i in items):
            raise ValueError("the model choked on this batch")
        return [error_record(i, i.error or check_text(i.value)) if (i.error or check_text(i.value))
                else ok_record(i, text=i.value.upper() + self.suffix) for i in items]


def test_one_input_one_record_a_list_a_list():
    p = Upper()
    assert p("abc") == {"input": "abc", "ok": True, "text": "ABC"}
    assert [r["text"] for r in p(["a", "b"])] == ["A", "B"]
    assert p([]) == []


def test_bad_input_raises_a_typed_error_or_comes_back_as_a_record():
    p = Upper()
    with pytest.raises(InputError, match="empty text") as info:
        p(["fine", ""])
    assert info.value.index == 1 and info.value.input == ""
    records = p(["fine", "", 5], errors="record")
    assert [r["ok"] for r in records] == [True, False, False]
    assert records[1] == {"input": "", "ok": False, "error": "empty text"}
    assert records[2]["input"] == 2 and "expected a text" in records[2]["error"]  # non-text: named by index
    with pytest.raises(UsageError, match="errors must be"):
        p("x", errors="ignore")


def test_a_failing_chunk_is_retried_item_by_item():
    p = Upper()
    records = p(["a", "boom", "c", "d"], errors="record")
    assert [r["ok"] for r in records] == [True, False, True, True]
    assert records[1]["error"] == "ValueError: the model choked on this batch"
    assert records[3]["text"] == "D"


def test_records_stream_chunk_by_chunk():
    p = Upper()
    pulled = []

    def endless():
        for i in range(10_000_000):
            pulled.append(i)
            yield f"t{i}"

    stream = p.records(endless())
    first = [next(stream) for _ in range(4)]
    assert [r["text"] for r in first] == ["T0", "T1", "T2", "T3"] and p.calls == 2
    time.sleep(0.2)
    assert len(pulled) <= 5 * Upper.chunk_size  # read ahead through a bounded queue, not ten million texts


def test_an_idle_stream_does_not_hold_back_what_it_sent():
    """A partial chunk is predicted once the stream pauses: each line is answered while the next has not
    come yet."""
    p = Upper()
    times = []

    def slow():
        for i in range(3):
            times.append(time.monotonic())
            yield f"line{i}"
            time.sleep(0.5)

    got = []
    for record in p.records(slow()):
        got.append((record["text"], time.monotonic() - times[len(got)]))
    assert [text for text, _ in got] == ["LINE0", "LINE1", "LINE2"]
    assert all(delay < 0.3 for _, delay in got), got


def test_a_stream_error_comes_after_the_items_before_it():
    def broken():
        yield "a"
        yield "b"
        raise DataError("f.txt: cannot read")

    records = []
    with pytest.raises(DataError, match="cannot read"):
        for record in Upper().records(broken()):
            records.append(record)
    assert [r["text"] for r in records] == ["A", "B"]


def test_options_are_checked():
    p = Upper().configure(suffix="!")
    assert p("a")["text"] == "A!"
    with pytest.raises(UsageError, match="no option beam"):
        Upper().configure(beam=3)


def test_length_batches_and_padding():
    batches = [list(b) for b in length_batches([5, 1, 3, 1, 4], 2)]
    assert batches == [[1, 3], [2, 4], [0]]
    np.testing.assert_array_equal(pad_rows([[1, 2, 3], [4]], np.int32), [[1, 2, 3], [4, 0, 0]])


def test_text_checks():
    assert check_text("ok") is None
    assert check_text(" \n") == "empty text"
    assert "undecodable" in check_text("bad\udcff")


def test_bundled_models_resolve_by_task_and_name():
    entry, path = bundled_model("image")
    assert entry.name == "imagenet" and entry.edge_file.endswith("float16.tflite")
    assert (path / entry.edge_file).is_file()
    entry, path = bundled_model("image", "digits")
    assert entry.name == "digits" and (path / entry.edge_file).is_file()
    for name, bundled in BUNDLED.items():
        assert (bundled_model(bundled.task, name)[1] / bundled.edge_file).is_file(), name
    with pytest.raises(ModelError, match="is a speech model, not image"):
        bundled_model("image", "speech")
    with pytest.raises(ModelError, match="no bundled vae model"):
        bundled_model("vae")


def test_load_dispatches_on_the_artifact(tmp_path):
    from sensorium.runtime.image import ImageClassifier
    from sensorium.runtime.sentiment import TextClassifier

    clf = ImageClassifier.load("digits", runtime="edge", top_k=2)
    assert clf.source.endswith("model-int8.tflite") and clf.top_k == 2
    with pytest.raises(ModelError, match="is a 'image' model, not 'sentiment'"):
        TextClassifier.load(clf.source)
    with pytest.raises(ModelError, match="takes a .tflite file"):
        ImageClassifier.load(tmp_path, runtime="edge")
    with pytest.raises(UsageError, match="runtime must be"):
        ImageClassifier.load(runtime="gpu")
