"""Labelled texts from CSV/TSV, builtin:tweets and TFDS; texts from the command line and files."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.sentiment.config import TextDataConfig
from sensorium.pipelines.sentiment.data import class_weights, load_text_split, load_train_validation
from sensorium.pipelines.sentiment.sources import load_text_items, read_table
from sensorium.runtime.errors import DataError
from sensorium.runtime.predictor import MAX_TEXT_CHARS, Item, check_text
from sensorium.runtime.text_io import file_items


def _write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_columns_by_name_or_flag(tmp_path):
    f = _write(tmp_path / "r.csv", 'review,polarity\n"good, really good",pos\nbad,neg\n,neg\nfine,\n')
    items = read_table(f, text_column=None, label_column=None)
    assert items.texts == ["good, really good", "bad"] and items.label_names == ["neg", "pos"]
    assert list(items.labels) == [1, 0] and items.ids == ["r.csv:2", "r.csv:3"]
    assert [why for _, why in items.failures] == ["empty text", "empty label"]
    g = _write(tmp_path / "r.tsv", "id\tbody\tmood\n1\thappy days\tup\n2\tsad days\tdown\n")
    items = read_table(g, text_column="body", label_column="mood")
    assert items.texts == ["happy days", "sad days"] and items.label_names == ["down", "up"]


def test_csv_errors_are_one_line(tmp_path):
    f = _write(tmp_path / "r.csv", "body,mood\nx,y\n")
    with pytest.raises(DataError, match="no text column .*columns: body, mood"):
        read_table(f, text_column=None, label_column=None)
    with pytest.raises(DataError, match="no column 'txt' for text"):
        read_table(f, text_column="txt", label_column="mood")
    with pytest.raises(DataError, match="only one label"):
        read_table(f, text_column="body", label_column="mood")
    latin = _write(tmp_path / "l.csv", "text,label\ncaf\u00e9,a\nb,b\n", encoding="latin-1")
    with pytest.raises(DataError, match="not UTF-8 text .*iconv"):
        read_table(latin, text_column=None, label_column=None)
    with pytest.raises(DataError, match="empty file"):
        read_table(_write(tmp_path / "e.csv", ""), text_column=None, label_column=None)
    ok = _write(tmp_path / "ok.csv", "text,label\nnice,pos\nugly,neg\nmeh,neutral\n")
    with pytest.raises(DataError, match="labels not known to the model: neutral .*knows: neg, pos"):
        read_table(ok, text_column=None, label_column=None, label_names=["neg", "pos"])


def test_csv_is_split_seeded_and_stratified(tmp_path):
    rows = "".join(f"text {i},{'pos' if i % 3 else 'neg'}\n" for i in range(100))
    f = _write(tmp_path / "r.csv", "text,label\n" + rows)
    cfg = TextDataConfig(spec=str(f))
    parts = {s: load_text_split(f"{f}@{s}", cfg, seed=1, default_split=s) for s in ("train", "validation", "test")}
    assert [parts[s].count for s in ("train", "validation", "test")] == [80, 10, 10]
    ids = [set(p.items.ids) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = load_text_split(f"{f}@test", cfg, seed=1, default_split="test")
    assert again.items.ids == parts["test"].items.ids
    assert load_text_split(f"{f}@test", cfg, seed=2, default_split="test").items.ids != again.items.ids
    train, val = load_train_validation(cfg, seed=1)
    assert train.count == 80 and val.count == 10


def test_builtin_tweets():
    pytest.importorskip("sklearn")
    cfg = TextDataConfig()
    train, val = load_train_validation(cfg, seed=42)
    test = load_text_split("builtin:tweets@test", cfg, seed=42, default_split="test")
    assert train.labels == ["negative", "neutral", "positive"]
    assert train.count + val.count + test.count == 37233  # 38,158 rows less exact duplicates
    assert 3700 < test.count < 3750
    texts = [set(s.items.texts) for s in (train, val, test)]
    assert not (texts[0] & texts[2] or texts[1] & texts[2])  # duplicates dropped: no tweet in two splits
    share = np.bincount(test.items.labels) / test.count
    np.testing.assert_allclose(share, np.bincount(train.items.labels) / train.count, atol=0.01)
    with pytest.raises(DataError,
                       match="builtin:mnist is image data, not sentiment data; sentiment builtins: .*tweets"):
        load_text_items(parse_spec("builtin:mnist"), seed=0, default_split="train")


BUILDER = '''
import tensorflow_datasets as tfds


class SensoriumTinyReviews(tfds.core.GeneratorBasedBuilder):
    """Ten reviews, two labels, train and test splits (written locally, offline)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["neg", "pos"])}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, 6), "test": self._generate_examples(6, 4)}

    def _generate_examples(self, start, n):
        for i in range(start, start + n):
            yield i, {"text": f"review number {i} " + ("great" if i % 2 else "awful"), "label": i % 2}
'''


def test_tfds_text_source(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")
    import importlib

    package = tmp_path / "code" / "sensorium_tiny_reviews"  # TFDS wants its builders inside a package
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(BUILDER)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    module = importlib.import_module("sensorium_tiny_reviews")
    module.SensoriumTinyReviews(data_dir=str(tmp_path)).download_and_prepare()
    cfg = TextDataConfig(spec="tfds:sensorium_tiny_reviews", data_dir=str(tmp_path))
    train, val = load_train_validation(cfg, seed=0)  # no validation split: 10% held out of train
    assert train.labels == ["neg", "pos"] and train.count + val.count == 6 and val.count >= 1
    test = load_text_split("tfds:sensorium_tiny_reviews@test", cfg, seed=0, default_split="test",
                           label_names=["neg", "pos"])
    assert test.count == 4 and test.items.texts[0].startswith("review number 6")
    with pytest.raises(DataError, match="labels not known to the model: neg"):
        load_text_split("tfds:sensorium_tiny_reviews@test", cfg, seed=0, default_split="test",
                        label_names=["pos", "other"])


def test_class_weights():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(w, [4 / 9, 4 / 3, 0.0], rtol=1e-6)


# --- texts to classify ---------------------------------------------------------------------------
def test_text_checks():
    assert check_text("good") is None
    assert [check_text(t) for t in ("", "   ")] == ["empty text", "empty text"]
    assert "longer than" in check_text("x" * (MAX_TEXT_CHARS + 1))
    assert "not valid UTF-8" in check_text("bad\udcff")
    assert "expected a text" in check_text(5)


def test_file_lines(tmp_path, monkeypatch):
    data = "\ufefffirst\r\nsecond ok\n\n".encode() + b"\xff\xfe broken\n" + "NUL\x00inside\n😀\n".encode()
    f = tmp_path / "in.txt"
    f.write_bytes(data)
    items = list(file_items([str(f)]))
    assert [i.value for i in items if i.error is None] == ["first", "second ok", "NUL\x00inside", "😀"]
    assert [i.error for i in items if i.error] == [f"{f}:3: empty text", f"{f}:4: not UTF-8 text (byte 0xff at byte 0)"]
    assert [i.name for i in items if i.error] == [f"{f}:3", f"{f}:4"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin\n")))
    assert list(file_items(["-"])) == [Item("from stdin", "from stdin", None)]
    with pytest.raises(DataError, match="no such file"):
        list(file_items([str(tmp_path / "missing.txt")]))
    with pytest.raises(DataError, match="is a folder"):
        list(file_items([str(tmp_path)]))
    binary = tmp_path / "b.bin"
    binary.write_bytes(bytes(1000))
    with pytest.raises(DataError, match="binary file"):
        list(file_items([str(binary)]))
