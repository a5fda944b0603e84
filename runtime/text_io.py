"""Texts from the command line or a file, checked one by one: a bad line is one failed item, not a crash.

Each item is (name, text, error): `name` is what `--json` reports as "input" (the text itself, or
`FILE:LINE` when the line could not be read), `error` a one-line reason or None.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Iterator

from sensorium.runtime.errors import DataError

MAX_CHARS = 1_000_000  # a longer line is a broken file, not a text (models read max_length tokens anyway)

TextItem = tuple[str, str, "str | None"]


def check_text(text: str) -> str | None:
    """Why `text` cannot be classified, or None."""
    if not text.strip():
        return "empty text"
    if len(text) > MAX_CHARS:
        return f"text longer than {MAX_CHARS:,} characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # undecodable bytes of argv arrive as lone surrogates
        return f"not valid UTF-8 (undecodable byte at character {exc.start})"
    return None


def _lines(data: bytes, source: str) -> Iterator[TextItem]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    for number, raw in enumerate(lines, start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (f"{source}:{number}", "", f"{source}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} at "
                                             f"byte {exc.start})")
            continue
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]  # byte-order mark
        error = check_text(text)
        yield (text if error is None else f"{source}:{number}", text,
               None if error is None else f"{source}:{number}: {error}")


def text_items(texts: Iterable[str], files: Iterable[str] = ()) -> Iterator[TextItem]:
    """Command-line texts, then each file's lines (`-` is standard input), in order."""
    for text in texts:
        error = check_text(text)
        yield (text if error is None or error == "empty text" else text.encode("utf-8", "replace").decode(),
               text, error)
    for name in files:
        if name == "-":
            yield from _lines(sys.stdin.buffer.read(), "<stdin>")
            continue
        path = Path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise DataError(f"{path}: is a folder; --file takes a text file with one text per line") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if b"\x00" in data[:8192] and data.count(b"\x00") > len(data) // 10:
            raise DataError(f"{path}: a binary file, not text with one text per line")
        yield from _lines(data, str(path))
