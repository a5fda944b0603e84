"""Parallel text (source sentence, target sentence) from a data spec.

- `FILE.tsv` / `FILE.csv`: two columns, source then target; an optional header line (`source`,
  `target`, or the two language codes when `source_language`/`target_language` are given). In a TSV,
  `\\t`, `\\n`, `\\r` and `\\\\` inside a cell are escapes (so a message with a tab or a newline stays
  on one line); a CSV uses ordinary CSV quoting instead.
- `FOLDER`: every gettext catalogue (.po, .mo) under it, of one target language.
- `tfds:NAME`: a TFDS dataset with a `Translation` feature or two text features (e.g.
  `tfds:ted_hrlr_translate/pt_to_en`), with its own splits.
- `builtin:ui-de`: English -> German software UI strings (see `corpus.py`), with its own splits.
- `builtin:debian-de`: English -> German messages of Debian packages (see `debian.py`), training only.

Sources without their own splits are split once, seeded 80/10/10, grouped by normalised source text
(`normalise_source`): every pair with the same source sentence lands in one split, so no test
sentence is seen in training. Exact duplicate pairs are dropped first (the first one is kept).
"""
from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sensorium.pipelines.common.dataspec import SPLITS, DataSpec
from sensorium.pipelines.common.sources import table_errors
from sensorium.pipelines.common.splits import DEFAULT_FRACTIONS
from sensorium.pipelines.datasets.catalogs import (
    CatalogPair,
    base_language,
    catalog_language,
    language_matches,
    read_mo,
    read_po,
)
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

HEADER_NAMES = (("source", "target"), ("src", "tgt"))
CATALOG_SUFFIXES = (".po", ".mo")
_TSV_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
_TSV_UNESCAPE_RE = re.compile(r"\\([tnr\\])")


@dataclass
class ParallelItems:
    """Aligned source and target texts with stable ids (e.g. `pairs.tsv:12`, `django.po:345`)."""

    sources: list[str]
    targets: list[str]
    ids: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, why) rows skipped

    def __len__(self) -> int:
        return len(self.sources)

    def take(self, idx: Sequence[int] | np.ndarray) -> ParallelItems:
        """The items at `idx`, in that order (failures are kept)."""
        idx = [int(i) for i in idx]
        return ParallelItems([self.sources[i] for i in idx], [self.targets[i] for i in idx],
                             [self.ids[i] for i in idx], self.failures)


# === Text helpers shared with the corpus builder ===
def normalise_source(text: str) -> str:
    """The grouping key of a source sentence: whitespace collapsed, case-folded."""
    return " ".join(text.split()).casefold()


def escape_tsv(text: str) -> str:
    """One TSV cell: backslash, tab, newline and carriage return written as `\\\\`, `\\t`, `\\n`, `\\r`."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def unescape_tsv(text: str) -> str:
    """The inverse of `escape_tsv` (other backslashes are kept as they are)."""
    return _TSV_UNESCAPE_RE.sub(lambda m: _TSV_ESCAPES[m.group(1)], text) if "\\" in text else text


def dedupe_pairs(items: ParallelItems) -> ParallelItems:
    """Drop exact duplicate (source, target) pairs, keeping the first."""
    seen: set[tuple[str, str]] = set()
    keep = []
    for i, pair in enumerate(zip(items.sources, items.targets)):
        if pair not in seen:
            seen.add(pair)
            keep.append(i)
    if len(keep) < len(items):
        log.info("dropped %d exact duplicate pairs", len(items) - len(keep))
    return items.take(keep)


def grouped_split(sources: Sequence[str], seed: int,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, np.ndarray]:
    """Split indices 0..n-1 into train/validation/test, keeping every normalised source in one split.

    The groups (one per `normalise_source` key, in order of first appearance) are shuffled with
    `seed`; test, then validation take whole groups until they hold their share of the pairs
    (at least one group each when there are three or more), train takes the rest. Returns sorted
    index arrays.
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        groups.setdefault(normalise_source(s), []).append(i)
    members = list(groups.values())
    order = np.random.default_rng(seed).permutation(len(members))
    n = len(sources)
    want = {"test": round(n * fractions[2]), "validation": round(n * fractions[1])}
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    pos = 0
    for name in ("test", "validation"):
        frac = fractions[2] if name == "test" else fractions[1]
        if frac <= 0:
            continue
        floor = 1 if len(members) >= 3 else 0
        while pos < len(order) and (len(parts[name]) < want[name] or len(parts[name]) < floor) \
                and len(order) - pos > (1 if fractions[0] > 0 else 0):
            parts[name].extend(members[order[pos]])
            pos += 1
    for g in order[pos:]:
        parts["train"].extend(members[g])
    return {name: np.asarray(sorted(idx), dtype=np.int64) for name, idx in parts.items()}


# === Tables ===
def _is_header(row: list[str], source_language: str | None, target_language: str | None) -> bool:
    cells = tuple(c.strip().lower() for c in row)
    if cells in HEADER_NAMES:
        return True
    if source_language and target_language and len(cells) == 2:
        return (language_matches(cells[0], base_language(source_language))
                and language_matches(cells[1], base_language(target_language)))
    return False


def read_pairs_table(path: Path, *, source_language: str | None = None,
                     target_language: str | None = None, id_prefix: str | None = None) -> ParallelItems:
    """A two-column TSV (escaped cells) or CSV of source and target; bad rows are skipped and listed."""
    tsv = path.suffix.lower() == ".tsv"
    prefix = id_prefix or path.name
    sources, targets, ids, failures = [], [], [], []
    with table_errors(path):
        with open(path, newline="\n" if tsv else "", encoding="utf-8-sig") as fh:  # a lone \r is no line end
            if tsv:
                rows = ((n, line.rstrip("\r\n").split("\t")) for n, line in enumerate(fh, start=1))
            else:
                reader = csv.reader(fh)
                rows = ((reader.line_num, row) for row in reader)
            first = True
            for line, row in rows:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if first:
                    first = False
                    if _is_header(row, source_language, target_language):
                        continue
                where = f"{prefix}:{line}"
                if len(row) != 2:
                    sep = "tab" if tsv else "comma"
                    failures.append((where, f"{path.name}:{line}: expected 2 {sep}-separated columns, "
                                            f"got {len(row)}"))
                    continue
                src, tgt = (unescape_tsv(c) for c in row) if tsv else row
                if not src.strip() or not tgt.strip():
                    failures.append((where, "empty source" if not src.strip() else "empty target"))
                    continue
                sources.append(src)
                targets.append(tgt)
                ids.append(where)
    if failures:
        log.warning("%s: skipped %d rows (%s, ...)", path, len(failures), failures[0][1])
    if not sources:
        raise DataError(f"{path}: no rows with both a source and a target text (two columns, source first)")
    return ParallelItems(sources, targets, ids, failures)


# === Catalogue folders ===
def find_catalogs(root: Path) -> list[Path]:
    """Every .po and .mo under `root` (sorted), leaving out a .mo compiled beside its .po."""
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in CATALOG_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    po_stems = {p.with_suffix("") for p in found if p.suffix.lower() == ".po"}
    return [p for p in found if p.suffix.lower() == ".po" or p.with_suffix("") not in po_stems]


def read_catalog_folder(root: Path, *, language: str | None) -> ParallelItems:
    """The pairs of the catalogues under `root` of `language` (needed when there are several)."""
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    files = find_catalogs(root)
    if not files:
        raise DataError(f"{root}: no gettext catalogues (.po or .mo files) in this folder")
    langs = {p: catalog_language(p) for p in files}
    if language:
        chosen = [p for p in files if language_matches(langs[p], language)]
        unknown = [p for p in files if langs[p] is None]
        if unknown:
            log.warning("%s: %d catalogues of unknown language left out (e.g. %s)", root, len(unknown), unknown[0])
        if not chosen:
            found = sorted({lang for lang in langs.values() if lang})
            raise DataError(f"{root}: no catalogues in language '{language}'"
                            + (f"; found: {', '.join(found)}" if found else ""))
    else:
        bases = sorted({base_language(lang) for lang in langs.values() if lang})
        if len(bases) > 1:
            found = sorted({lang for lang in langs.values() if lang})
            raise DataError(f"{root}: catalogues of several languages ({', '.join(found)}); pass the language "
                            "option (--language / target_language) to pick one")
        chosen = files
    sources, targets, ids, failures = [], [], [], []
    for path in chosen:
        rel = path.relative_to(root).as_posix()
        try:
            pairs: list[CatalogPair] = read_po(path) if path.suffix.lower() == ".po" else read_mo(path)
        except DataError as exc:
            log.warning("skipping catalogue %s", exc)
            failures.append((rel, str(exc)))
            continue
        parent = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
        for p in pairs:
            sources.append(p.source)
            targets.append(p.target)
            ids.append(parent + p.ref)
    if not sources:
        raise DataError(f"{root}: no usable translated messages in {len(chosen)} catalogues"
                        + (f" ({len(failures)} unreadable: {failures[0][1]})" if failures else ""))
    return ParallelItems(sources, targets, ids, failures)


# === TFDS ===
def _from_tfds(spec: DataSpec, split: str | None, *, data_dir: str | None, download: bool,
               source_language: str | None, target_language: str | None) -> tuple[ParallelItems, str]:
    from sensorium.pipelines.common import tfds_source

    ds, info = tfds_source.load_tfds(spec, split, data_dir=data_dir, download=download)
    features = dict(info.features.items())
    trans_key = next((k for k, f in features.items() if type(f).__name__ == "Translation"), None)
    if trans_key is not None:
        available = list(getattr(features[trans_key], "languages", []))
    else:
        available = [k for k, f in features.items() if type(f).__name__ == "Text"]
    keys = tuple(info.supervised_keys or ())
    src = source_language or (keys[0] if len(keys) == 2 and isinstance(keys[0], str) else None)
    tgt = target_language or (keys[1] if len(keys) == 2 and isinstance(keys[1], str) else None)
    if not src or not tgt:
        raise DataError(f"{spec.text}: cannot tell the source and target languages (it has: "
                        f"{', '.join(available) or 'no text features'}); pass the source and target language options")
    missing = [lang for lang in (src, tgt) if lang not in available]
    if missing or src == tgt:
        raise DataError(f"{spec.text}: no '{missing[0] if missing else tgt}' text to pair with '{src}'; "
                        f"it has: {', '.join(available) or 'no text features'}")
    chosen = spec.split or split or "train"
    sources, targets, ids, failures = [], [], [], []
    for i, ex in enumerate(ds.as_numpy_iterator()):
        row = ex[trans_key] if trans_key is not None else ex
        s, t = (_text(row[src]), _text(row[tgt]))
        where = f"{spec.name}/{chosen}:{i}"
        if not s.strip() or not t.strip():
            failures.append((where, "empty source" if not s.strip() else "empty target"))
            continue
        sources.append(s)
        targets.append(t)
        ids.append(where)
    if not sources:
        raise DataError(f"{spec.text}: no examples with both texts in split {chosen}{spec.slice or ''}")
    return ParallelItems(sources, targets, ids, failures), chosen


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


# === Builtin ===
def read_builtin(name: str) -> dict[str, ParallelItems]:
    """The splits of a builtin corpus (`ui-de`, `debian-de`), which must have been built once beforehand."""
    from sensorium.pipelines.datasets.registry import get_builtin

    return get_builtin(name, "translation").entry("load")()


# === Selection ===
def _select(everything: ParallelItems | dict[str, ParallelItems], spec: DataSpec, *, seed: int,
            default_split: str | None) -> tuple[ParallelItems, str]:
    split = spec.chosen_split(default_split)
    if isinstance(everything, dict):
        if split is None:
            parts = [everything[s] for s in SPLITS if s in everything]
            chosen = ParallelItems([x for p in parts for x in p.sources], [x for p in parts for x in p.targets],
                                   [x for p in parts for x in p.ids], [f for p in parts for f in p.failures])
        elif split not in everything:
            raise DataError(f"'{spec.source}' has no '{split}' split; it has: {', '.join(everything)}")
        else:
            chosen = everything[split]
    else:
        everything = dedupe_pairs(everything)
        chosen = everything if split is None else everything.take(grouped_split(everything.sources, seed)[split])
    if spec.slice is not None:
        chosen = chosen.take(spec.slice.apply(list(range(len(chosen)))))
    if len(chosen) == 0:
        raise DataError(f"data spec '{spec.text}' selects no pairs (split {split or 'all'}{spec.slice or ''})")
    return chosen, split or "all"


def load_parallel(spec: DataSpec, *, seed: int, default_split: str | None, language: str | None = None,
                  source_language: str | None = None, target_language: str | None = None,
                  data_dir: str | None = None, download: bool = False) -> tuple[ParallelItems, str]:
    """(items of the chosen split, split name) for any translation data spec.

    `language` picks the catalogues of a folder (default: `target_language`); `source_language` and
    `target_language` pick a TFDS dataset's texts and name a table's header line.
    """
    if spec.kind == "tfds":
        return _from_tfds(spec, default_split, data_dir=data_dir, download=download,
                          source_language=source_language, target_language=target_language)
    if spec.kind == "builtin":
        return _select(read_builtin(spec.name), spec, seed=seed, default_split=default_split)
    if spec.kind == "manifest":
        everything = read_pairs_table(Path(spec.name), source_language=source_language,
                                      target_language=target_language)
    elif spec.kind == "folder":
        everything = read_catalog_folder(Path(spec.name), language=language or target_language)
    else:
        raise DataError(f"{spec.text}: translation data is a .tsv/.csv file, a folder of .po/.mo catalogues, "
                        "tfds:NAME, builtin:ui-de or builtin:debian-de")
    return _select(everything, spec, seed=seed, default_split=default_split)


__all__ = ["ParallelItems", "dedupe_pairs", "escape_tsv", "find_catalogs", "grouped_split", "load_parallel",
           "normalise_source", "read_builtin", "read_catalog_folder", "read_pairs_table", "unescape_tsv"]
