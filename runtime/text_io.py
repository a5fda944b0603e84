"""Texts from the command line or from files, read line by line and checked one by one: a bad line is
one failed item, not a crash, and a long file or a stream is never held in memory whole.

Each text becomes an `Item` (see `sensorium.runtime.predictor`): its name is what `--json` reports as
"input" (the text itself, or `FILE:LINE` when the line is unusable) and its error a one-line reason.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from sensorium.runtime.errors import DataError, InputError
from sensorium.runtime.paths import open_input
from sensorium.runtime.predictor import MAX_TEXT_CHARS, Item, check_text

MAX_LINE_BYTES = 4 * MAX_TEXT_CHARS  # a UTF-8 character is at most 4 bytes


def file_items(files: Iterable[str]) -> Iterator[Item]:
    """The lines of each file (`-` is standard input) as items, one at a time."""
    for name in files:
        if name == "-":
            yield from file_lines(sys.stdin.buffer, "<stdin>")
            continue
        path = Path(name)
        with open_input(path, folder="not a text file with one text per line") as fh:
            head = fh.peek(8192)[:8192]
            if b"\x00" in head and head.count(b"\x00") > len(head) // 10:
                raise DataError(f"{path}: a binary file, not text with one text per line")
            yield from file_lines(fh, str(path))


def file_lines(fh: BinaryIO, source: str) -> Iterator[Item]:
    """The lines of a binary stream as items, one at a time (a line is yielded as soon as it is read)."""
    number = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the overlong line
                raw = fh.readline(MAX_LINE_BYTES + 1)
            yield Item("", f"{source}:{number}", f"{source}:{number}: line longer than {MAX_LINE_BYTES:,} bytes")
            continue
        raw = raw[:-1] if raw.endswith(b"\n") else raw
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Item("", f"{source}:{number}", f"{source}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} "
                                                 f"at byte {exc.start})")
            continue
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]  # byte-order mark
        error = check_text(text)
        yield Item(text, text if error is None else f"{source}:{number}",
                   None if error is None else f"{source}:{number}: {error}")


def read_text_file(path: str | Path, what: str, max_bytes: int) -> str:
    """The whole of a small UTF-8 text file (a byte-order mark dropped); `what` names it in the one-line
    InputError for a missing path, a folder, a file over `max_bytes`, bytes that are not UTF-8 or NULs."""
    p = Path(path)
    try:
        if not p.is_file():
            raise InputError(f"{what} {p} " + ("is not a file" if p.exists() else "does not exist"))
        size = p.stat().st_size
        if size > max_bytes:
            raise InputError(f"{what} {p} is {size / 1e6:.1f} MB (at most {max_bytes // 2**20} MiB)")
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {p} is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise InputError(f"{what} {p} is not a text file (it holds NUL bytes)")
    return text
