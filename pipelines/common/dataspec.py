"""The data spec grammar `SOURCE[@SPLIT]` (CONTRACTS.md), parsed once for every task.

SOURCE: a folder, a manifest (.csv/.tsv with a header), `tfds:NAME[/CONFIG][:VERSION]`, `builtin:NAME`.
SPLIT: `train`, `validation` or `test`, optionally sliced TFDS-style: `train[:20%]`, `test[:500]`,
`train[10%:30%]`, `validation[-100:]`; or `all`: every item of the source (a user's own test folder;
for sources with splits of their own, all of them together).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sensorium.runtime.errors import DataError

SPLITS = ("train", "validation", "test")
ALL = "all"  # the split that is every item of the source

VALID_FORMS = (
    "valid data specs: FOLDER (class sub-folders), MANIFEST.csv|.tsv, tfds:NAME[/CONFIG][:VERSION], "
    "builtin:NAME, each optionally followed by @train, @validation, @test (with an optional slice "
    "such as @train[:20%] or @test[:500]) or @all (every item)"
)

_SPLIT_RE = re.compile(r"^(train|validation|test|all)(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")
_TFDS_RE = re.compile(r"^tfds:([A-Za-z0-9_]+)(?:/([A-Za-z0-9_.\-]+))?(?::(\d+\.\d+\.\d+|\d+\.\d+\.\*|\d+\.\*\.\*))?$")
_BUILTIN_RE = re.compile(r"^builtin:([a-z0-9][a-z0-9_\-]*)$")

T = TypeVar("T")


@dataclass(frozen=True)
class SplitSlice:
    """A TFDS-style slice: bounds are item counts or percentages (`pct`), negative from the end."""

    start: str | None = None
    stop: str | None = None

    def apply(self, items: Sequence[T]) -> list[T]:
        n = len(items)
        return list(items[self._bound(self.start, n) : self._bound(self.stop, n)])

    @staticmethod
    def _bound(value: str | None, n: int) -> int | None:
        if value is None:
            return None
        if value.endswith("%"):
            pct = int(value[:-1])
            return round(n * pct / 100)
        return int(value)

    def __str__(self) -> str:
        return f"[{self.start or ''}:{self.stop or ''}]"


@dataclass(frozen=True)
class DataSpec:
    """A parsed data spec."""

    text: str
    kind: str  # "folder" | "manifest" | "tfds" | "builtin"
    name: str  # folder/manifest path, TFDS name or builtin name
    split: str | None = None
    slice: SplitSlice | None = None
    tfds_config: str | None = None
    tfds_version: str | None = None

    @property
    def source(self) -> str:
        """The spec without its split."""
        return self.text.rsplit("@", 1)[0] if self.split else self.text

    def with_split(self, split: str) -> DataSpec:
        """The same source on another split (no slice) unless a split was given explicitly."""
        if self.split is not None:
            return self
        return parse_spec(f"{self.text}@{split}")

    def chosen_split(self, default: str | None) -> str | None:
        """The split to read: the spec's, else `default`; None means every item (`@all`)."""
        split = self.split or default
        return None if split == ALL else split

    @property
    def split_label(self) -> str:
        return f"{self.split}{self.slice or ''}" if self.split else "all"

    @property
    def tfds_split(self) -> str:
        """The split string TFDS understands (`train[:20%]`)."""
        return f"{self.split or 'train'}{self.slice or ''}"


def parse_spec(text: str, *, must_exist: bool = True) -> DataSpec:
    """Parse `SOURCE[@SPLIT]`; unknown or malformed specs fail listing the valid forms."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty data spec; {VALID_FORMS}")
    text = text.strip()
    source, split, sl = text, None, None
    if "@" in text:
        head, tail = text.rsplit("@", 1)
        m = _SPLIT_RE.match(tail)
        if m:
            source, split = head, m.group(1)
            if "[" in tail:
                sl = SplitSlice(m.group(2), m.group(3))
        elif re.match(r"^[A-Za-z]+(\[.*\])?$", tail) and not Path(text).exists():
            raise DataError(f"unknown split '{tail}' in '{text}'; {VALID_FORMS}")
    if source.startswith("tfds:"):
        m = _TFDS_RE.match(source)
        if not m:
            raise DataError(f"malformed TFDS spec '{source}'; {VALID_FORMS}")
        return DataSpec(text, "tfds", m.group(1), split, sl, m.group(2), m.group(3))
    if source.startswith("builtin:"):
        m = _BUILTIN_RE.match(source)
        if not m:
            raise DataError(f"malformed builtin spec '{source}'; {VALID_FORMS}")
        return DataSpec(text, "builtin", m.group(1), split, sl)
    if re.match(r"^[a-z][a-z0-9+]*:(?!\\)", source) and not Path(source).exists():
        raise DataError(f"unknown data source scheme in '{source}'; {VALID_FORMS}")
    path = Path(source).expanduser()
    if path.is_dir():
        return DataSpec(text, "folder", str(path), split, sl)
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv"):
            raise DataError(f"'{source}' is a file but not a .csv/.tsv manifest; {VALID_FORMS}")
        return DataSpec(text, "manifest", str(path), split, sl)
    if must_exist:
        raise DataError(f"data spec '{text}': no such folder or manifest; {VALID_FORMS}")
    kind = "manifest" if path.suffix.lower() in (".csv", ".tsv") else "folder"
    return DataSpec(text, kind, str(path), split, sl)
