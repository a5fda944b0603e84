"""Turn a DataSpec into labelled items for one split (folders, manifests; builtin data through
`sensorium.pipelines.datasets.registry`).

Sources with their own splits (builtin:mnist, TFDS) keep them; the others are split once, seeded and
stratified (80/10/10), and the chosen item ids are written into the run directory (`splits/`).
TFDS specs are handled in `tfds_source` because they yield tf.data datasets, not item lists.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.dataspec import DataSpec
from sensorium.pipelines.common.splits import DEFAULT_FRACTIONS, stratified_split
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Items:
    """Examples before decoding: `refs` are file paths (list[str]) or an in-memory array (N, ...)."""

    refs: Any
    labels: np.ndarray | None  # (N,) int class indices, or None for unlabelled items
    label_names: list[str] | None
    ids: list[str]
    extra: dict[str, list[Any]] = field(default_factory=dict)  # other manifest columns, per item

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray | list[int]) -> Items:
        idx = np.asarray(idx, dtype=np.int64)
        refs = self.refs[idx] if isinstance(self.refs, np.ndarray) else [self.refs[i] for i in idx]
        return Items(
            refs,
            None if self.labels is None else self.labels[idx],
            self.label_names,
            [self.ids[i] for i in idx],
            {k: [v[i] for i in idx] for k, v in self.extra.items()},
        )


# === Folders and manifests ===
def scan_class_folders(root: Path, accept: Callable[[Path], bool]) -> Items:
    """A folder of class sub-folders -> items labelled by sub-folder name (sorted)."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    refs: list[str] = []
    labels: list[int] = []
    skipped = 0
    for ci, cls in enumerate(classes):
        for p in sorted((root / cls).rglob("*")):
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
                if accept(p):
                    refs.append(str(p))
                    labels.append(ci)
                else:
                    skipped += 1
    if skipped:
        log.info("%s: ignored %d files with unsupported extensions", root, skipped)
    used = sorted(set(labels))
    if not refs:
        raise DataError(
            f"{root}: no usable files found (expected one sub-folder per class holding the files)"
        )
    if len(used) < 2:
        only = classes[used[0]] if used else "(none)"
        raise DataError(f"{root}: only one class ('{only}') has files; a classifier needs at least two")
    empty = [c for i, c in enumerate(classes) if i not in used]
    if empty:
        log.warning("%s: class folders without files are ignored: %s", root, ", ".join(empty))
        remap = {old: new for new, old in enumerate(used)}
        labels = [remap[label] for label in labels]
        classes = [classes[i] for i in used]
    ids = [str(Path(r).relative_to(root)) for r in refs]
    return Items(refs, np.asarray(labels, dtype=np.int64), classes, ids)


@contextmanager
def table_errors(path: Path) -> Iterator[None]:
    """Reading a CSV/TSV file: undecodable bytes, CSV syntax and I/O errors become one-line DataErrors."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                        "convert it, e.g. iconv -f latin1 -t utf-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: unreadable CSV ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_manifest(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV/TSV manifest with a header -> (columns, rows)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except UnicodeDecodeError:
        raise DataError(f"{path}: manifest is not UTF-8 text") from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc})") from None
    if not columns:
        raise DataError(f"{path}: manifest is empty (it needs a header line)")
    if not rows:
        raise DataError(f"{path}: manifest has a header but no rows")
    return columns, rows


def pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], path: Path,
                what: str) -> str:
    """The manifest column for `what`: the user's choice, else the first known candidate name."""
    lower = {c.lower().strip(): c for c in columns}
    if wanted:
        if wanted in columns:
            return wanted
        if wanted.lower() in lower:
            return lower[wanted.lower()]
        raise DataError(f"{path}: no column '{wanted}' for {what}; columns: {', '.join(columns)}")
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    raise DataError(f"{path}: no {what} column (looked for {', '.join(candidates)}); columns: "
                    f"{', '.join(columns)}")


def manifest_items(path: Path, *, ref_column: str | None, label_column: str | None,
                   ref_candidates: tuple[str, ...] = ("path", "file", "filename", "image", "audio"),
                   label_candidates: tuple[str, ...] = ("label", "class", "category"),
                   label_names: list[str] | None = None, resolve_paths: bool = True) -> Items:
    """A labelled manifest -> items; relative paths resolve against the manifest's folder."""
    columns, rows = read_manifest(path)
    rc = pick_column(columns, ref_column, ref_candidates, path, "path")
    lc = pick_column(columns, label_column, label_candidates, path, "label")
    refs, raw_labels = [], []
    for i, row in enumerate(rows, start=2):
        ref, label = (row.get(rc) or "").strip(), (row.get(lc) or "").strip()
        if not ref or not label:
            raise DataError(f"{path}:{i}: empty {'path' if not ref else 'label'}")
        if resolve_paths:
            p = Path(ref).expanduser()
            ref = str(p if p.is_absolute() else (path.parent / p))
        refs.append(ref)
        raw_labels.append(label)
    names = label_names or sorted(set(raw_labels))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(raw_labels) - set(index))
    if unknown:
        raise DataError(f"{path}: labels not known to the model: {', '.join(unknown[:10])}")
    if len(set(raw_labels)) < 2 and label_names is None:
        raise DataError(f"{path}: only one label ('{raw_labels[0]}'); a classifier needs at least two")
    others = {c: [r.get(c) for r in rows] for c in columns if c not in (rc, lc)}
    ids = [str(Path(r).relative_to(path.parent)) if Path(r).is_relative_to(path.parent) else r for r in refs]
    return Items(refs, np.asarray([index[x] for x in raw_labels], dtype=np.int64), names, ids, others)


# === Splits ===
def select_split(items_or_splits: Items | dict[str, Items], spec: DataSpec, *, seed: int,
                 default_split: str | None, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
                 ) -> tuple[Items, str]:
    """Pick the split named by the spec (or `default_split`), then apply its slice.

    Returns (items, split name). `split=None` with no default means all items.
    """
    split = spec.chosen_split(default_split)
    if isinstance(items_or_splits, dict):
        if split is None:
            chosen = _concat(list(items_or_splits.values()))
        elif split not in items_or_splits:
            raise DataError(f"'{spec.source}' has no '{split}' split; it has: "
                            f"{', '.join(items_or_splits)}")
        else:
            chosen = items_or_splits[split]
    else:
        if split is None:
            chosen = items_or_splits
        else:
            parts = stratified_split(items_or_splits.labels, len(items_or_splits), seed, fractions)
            chosen = items_or_splits.take(parts[split])
    if spec.slice is not None:
        chosen = chosen.take(spec.slice.apply(list(range(len(chosen)))))
    if len(chosen) == 0:
        raise DataError(f"data spec '{spec.text}' selects no items (split {split or 'all'})")
    return chosen, split or "all"


def _concat(parts: list[Items]) -> Items:
    first = parts[0]
    refs = (np.concatenate([p.refs for p in parts]) if isinstance(first.refs, np.ndarray)
            else [r for p in parts for r in p.refs])
    labels = None if first.labels is None else np.concatenate([p.labels for p in parts])
    return Items(refs, labels, first.label_names, [i for p in parts for i in p.ids])
