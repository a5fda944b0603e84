"""gettext catalogues (.po text, .mo binary) read as (source, target) pairs, without third-party libraries.

A catalogue translates the program's own messages (`msgid`, usually English) into one language
(`msgstr`). Only real translations become pairs: the header entry, entries flagged `fuzzy` (a
machine guess awaiting review), obsolete entries (`#~`) and untranslated entries are skipped. A
plural entry gives two pairs: (msgid, msgstr[0]) and (msgid_plural, msgstr[1]).

Zope/Plone catalogues use symbolic message ids (`label_title`) and keep the English text in an
extracted comment (`#. Default: "Title"`); `read_po` uses that default text as the source when it
is there. Compiled .mo files do not keep it, so their source is the message id.
"""
from __future__ import annotations

import codecs
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

MO_MAGIC = 0x950412DE
HEADER_SCAN_BYTES = 65536  # the header entry comes first; translator comments above it are short
# Caps for untrusted catalogues (from wheels, .deb packages or any folder). The largest real ones
# (gcc, glibc, iso-codes, Plone, LibreOffice modules) have tens of thousands of entries and a few MB.
MAX_CATALOG_BYTES = 32 * 2**20  # one .po/.mo file, read whole into memory: several times the largest real one
MAX_CATALOG_ENTRIES = 200_000  # entries of one catalogue: each becomes Python objects (~0.5 KB a pair)
# The strings a .mo table points at, summed with repeats: entries may all point at one region of the
# file, so a 128 KB file could otherwise decode to gigabytes. msgfmt stores each string once, so a
# real file stays under its own size.
MAX_MO_STRING_BYTES = 64 * 2**20

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "?": "?",
            "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_STRING_RE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"')  # unrolled: linear, no per-character alternation
_ESCAPE_RE = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|[0-7]{1,3}|.)")
_KEYWORD_RE = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?(?=[\s\"]|$)\s*(.*)$")
_CHARSET_RE = re.compile(rb'"Content-Type:[^"\n]*charset=([A-Za-z0-9_.:\-]+)')
_LANGUAGE_RE = re.compile(rb'^"Language:[ \t]*([A-Za-z0-9_@\-]*)[ \t]*\\n"', re.MULTILINE)
_LANG_DIR_RE = re.compile(r"^[a-z]{2,3}(?:[_-][A-Za-z0-9]+)?(?:@[A-Za-z0-9]+)?$")


@dataclass(frozen=True)
class CatalogPair:
    """One translated message: `ref` is `FILE.po:LINE` (the msgid's line) or `FILE.mo:INDEX`."""

    source: str
    target: str
    context: str | None
    ref: str


class _Malformed(Exception):
    """A syntax error at the current line (internal; becomes a DataError with the line number)."""


class _TooManyEntries(Exception):
    """More than MAX_CATALOG_ENTRIES entries (internal; becomes a DataError naming the file)."""


def _size(n: int) -> str:
    """`n` bytes for a message: "32 MiB", or "1000 bytes" when not whole MiB."""
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n} bytes"


def _check_size(where: str, size: int) -> None:
    """DataError when a catalogue of `size` bytes is over MAX_CATALOG_BYTES."""
    if size > MAX_CATALOG_BYTES:
        raise catalog_size_error(where)


def catalog_size_error(where: str) -> DataError:
    """The one-line error for a catalogue over MAX_CATALOG_BYTES (on disk, in a wheel or a package)."""
    return DataError(f"{where}: more than {_size(MAX_CATALOG_BYTES)}, the cap for one catalogue (MAX_CATALOG_BYTES)")


# === .po ===
def _unquote(text: str) -> str:
    """The value of the C string literal that is the whole of `text` (escapes resolved)."""
    m = _STRING_RE.match(text)
    if not m:
        if text.startswith('"'):
            raise _Malformed("a string never closes")
        raise _Malformed(f"expected a quoted string, got {text[:30]!r}")
    rest = text[m.end():].strip()
    if rest:
        raise _Malformed(f"text after the closing quote: {rest[:30]!r}")
    body = m.group(1)
    return _ESCAPE_RE.sub(_unescape_one, body) if "\\" in body else body


def _unescape_one(m: re.Match[str]) -> str:
    e = m.group(1)
    if e in _ESCAPES:
        return _ESCAPES[e]
    if e[0] == "x" and len(e) > 1:
        return chr(int(e[1:], 16))
    if e[0] in "01234567":
        return chr(int(e, 8))
    raise _Malformed(f"unknown escape \\{e}")


@dataclass
class _Entry:
    """One entry while it is parsed: each string as its parts (a line each), joined once in `_finish`.

    Joining once keeps parsing linear: appending to a str per continuation line copied the whole string
    each time (a 4 MB msgstr took 45 s).
    """

    start: int = 0  # first line of the entry (comments included)
    line: int = 0  # msgid line
    plural_line: int = 0
    context: list[str] | None = None
    msgid: list[str] | None = None
    plural: list[str] | None = None
    strs: dict[int, list[str]] = field(default_factory=dict)
    plain_msgstr: bool = False
    indexed_msgstr: bool = False
    flags: set[str] = field(default_factory=set)
    default: list[str] | None = None

    @property
    def empty(self) -> bool:
        return self.msgid is None and self.context is None and not self.flags and self.default is None

    @property
    def complete(self) -> bool:
        return bool(self.strs) or self.plain_msgstr or self.indexed_msgstr


class _PoParser:
    """A line-based parser of the GNU .po syntax; `pairs` and `header` after `feed`."""

    def __init__(self, name: str, use_default: bool) -> None:
        self.name = name
        self.use_default = use_default
        self.pairs: list[CatalogPair] = []
        self.header: str | None = None
        self.entry = _Entry()
        self.entries = 0
        self.cont: tuple[str, list[str]] | None = None  # what a bare "..." line continues, and its parts

    def feed(self, lines: list[str]) -> None:
        for lineno, raw in enumerate(lines, start=1):
            self.lineno = lineno
            line = raw.strip()
            if not line:
                if self.cont and self.cont[0] == "default":
                    self.cont = None  # a #. Default: text ends at a blank line
                continue
            if line.startswith("#"):
                self._comment(line)
            elif line.startswith('"'):
                self._continue(line)
            else:
                m = _KEYWORD_RE.match(line)
                if not m:
                    raise _Malformed(f"unexpected line {line[:40]!r}")
                self._keyword(m.group(1), m.group(2), m.group(3))
        self.lineno = len(lines)
        self._finish(at_end=True)

    def _start_new_if_done(self) -> None:
        if self.entry.complete:
            self._finish()

    def _comment(self, line: str) -> None:
        if self.entry.msgid is not None and not self.entry.complete:
            raise _Malformed("comment between msgid and msgstr")
        self._start_new_if_done()
        if self.entry.empty:
            self.entry.start = self.lineno
        self.cont = None
        if line.startswith("#~"):  # obsolete: drop it and the comments that went with it
            self.entry = _Entry()
            return
        if line.startswith("#,"):
            self.entry.flags.update(f.strip() for f in line[2:].split(",") if f.strip())
        elif line.startswith("#."):
            text = line[2:].strip()
            if text.startswith("Default:"):
                self.entry.default = [_unquote(text[len("Default:"):].strip())]
                self.cont = ("default", self.entry.default)
            elif text.startswith('"') and self.entry.default is not None:
                self.entry.default.append(_unquote(text))  # a multi-line default: #. "..." lines
                self.cont = ("default", self.entry.default)

    def _keyword(self, kw: str, index: str | None, rest: str) -> None:
        e = self.entry
        if index is not None and kw != "msgstr":
            raise _Malformed(f"{kw} takes no [index]")
        value = _unquote(rest)
        if kw == "msgctxt":
            self._start_new_if_done()
            e = self.entry
            if e.msgid is not None:
                raise _Malformed("msgctxt after msgid")
            if e.context is not None:
                raise _Malformed("two msgctxt lines in one entry")
            if e.empty:
                e.start = self.lineno
            e.context = [value]
            self.cont = ("context", e.context)
        elif kw == "msgid":
            self._start_new_if_done()
            e = self.entry
            if e.msgid is not None:
                raise _Malformed("msgid without msgstr before it")
            if e.empty:
                e.start = self.lineno
            e.msgid, e.line = [value], self.lineno
            self.cont = ("msgid", e.msgid)
        elif kw == "msgid_plural":
            if e.msgid is None:
                raise _Malformed("msgid_plural before msgid")
            if e.complete or e.plural is not None:
                raise _Malformed("msgid_plural out of place")
            e.plural, e.plural_line = [value], self.lineno
            self.cont = ("plural", e.plural)
        else:  # msgstr / msgstr[N]
            if e.msgid is None:
                raise _Malformed("msgstr before msgid")
            if index is None:
                if e.plural is not None:
                    raise _Malformed("msgid_plural needs msgstr[N], not msgstr")
                if e.complete:
                    raise _Malformed("a second msgstr")
                e.plain_msgstr = True
                n = 0
            else:
                if e.plural is None:
                    raise _Malformed(f"msgstr[{index}] without msgid_plural")
                n = int(index)
                if n in e.strs:
                    raise _Malformed(f"a second msgstr[{n}]")
                e.indexed_msgstr = True
            e.strs[n] = [value]
            self.cont = ("msgstr", e.strs[n])

    def _continue(self, line: str) -> None:
        if self.cont is None:
            raise _Malformed("a string line without a keyword before it")
        self.cont[1].append(_unquote(line))

    def _finish(self, at_end: bool = False) -> None:
        e = self.entry
        self.entry, self.cont = _Entry(), None
        if e.msgid is None:
            if e.context is not None:
                raise _Malformed("msgctxt without msgid")
            return  # comments only (e.g. at the end of the file)
        if not e.complete:
            if at_end:
                raise _Malformed(f"the entry at line {e.line} has no msgstr")
            raise _Malformed("msgid without msgstr")
        self.entries += 1
        if self.entries > MAX_CATALOG_ENTRIES:
            raise _TooManyEntries
        msgid, context = "".join(e.msgid), _joined(e.context)
        strs = {n: "".join(parts) for n, parts in e.strs.items()}
        if msgid == "" and context is None:
            self.header = strs.get(0, "")
            return
        if "fuzzy" in e.flags:
            return
        default, plural = _joined(e.default), _joined(e.plural)
        source = default if self.use_default and default else msgid
        if source and strs.get(0):
            self.pairs.append(CatalogPair(source, strs[0], context, f"{self.name}:{e.line}"))
        if plural and strs.get(1):
            self.pairs.append(CatalogPair(plural, strs[1], context, f"{self.name}:{e.plural_line}"))


def _joined(parts: list[str] | None) -> str | None:
    return None if parts is None else "".join(parts)


def _po_charset(data: bytes, where: str) -> str:
    m = _CHARSET_RE.search(data[:HEADER_SCAN_BYTES])
    charset = m.group(1).decode("ascii") if m else "utf-8"
    if charset.upper() == "CHARSET":  # an unfilled template header
        charset = "utf-8"
    return _text_charset(charset, where, ".po")


def _text_charset(charset: str, where: str, kind: str) -> str:
    """`charset` if Python decodes text with it; a DataError for unknown names and for codecs that are not
    text encodings (rot13, base64, zlib, ...: `bytes.decode` refuses them with a LookupError)."""
    try:
        info = codecs.lookup(charset)
    except LookupError:
        raise DataError(f"{where}: unknown charset '{charset}' in the {kind} header") from None
    if not getattr(info, "_is_text_encoding", True):
        raise DataError(f"{where}: charset '{charset}' in the {kind} header is not a text encoding")
    return charset


def _decode(data: bytes, charset: str, where: str) -> str:
    if charset.replace("-", "").replace("_", "").lower() == "utf8":
        charset = "utf-8-sig"  # tolerate a byte-order mark
    try:
        return data.decode(charset)
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not valid {charset.replace('-sig', '')} text (byte {exc.object[exc.start]:#04x} "
                        f"at offset {exc.start}); fix the file or its header's charset") from None


def _read_bytes(path: Path, head: int | None = None) -> bytes:
    """A catalogue file's bytes (only the first `head` when given); DataError when unreadable or over
    MAX_CATALOG_BYTES."""
    try:
        with path.open("rb") as f:
            data = f.read(head if head is not None else MAX_CATALOG_BYTES + 1)  # a FIFO has no size to stat
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    _check_size(str(path), len(data))
    return data


def _catalog_bytes(path: str | PurePath, data: bytes | None) -> bytes:
    """`data`, or the file's bytes when None, at most MAX_CATALOG_BYTES of them."""
    if data is None:
        return _read_bytes(Path(path))
    _check_size(str(path), len(data))
    return data


def _parse_po(path: str | PurePath, data: bytes | None, use_default: bool) -> _PoParser:
    path_str = str(path)
    data = _catalog_bytes(path, data)
    text = _decode(data, _po_charset(data, path_str), path_str)
    parser = _PoParser(PurePath(path).name, use_default)
    try:
        parser.feed(text.splitlines())
    except _Malformed as exc:
        raise DataError(f"{path_str}:{parser.lineno}: malformed .po file ({exc})") from None
    except _TooManyEntries:
        raise DataError(f"{path_str}: more than {MAX_CATALOG_ENTRIES} entries (MAX_CATALOG_ENTRIES)") from None
    return parser


def read_po(path: str | PurePath, data: bytes | None = None, *, use_default: bool = True) -> list[CatalogPair]:
    """The translated pairs of a .po file (`data`: its bytes, when it is not on disk, e.g. in a zip).

    Honours the header's charset; a file that does not decode or parse raises a one-line DataError
    naming the line. With `use_default`, a `#. Default: "..."` comment replaces the msgid as source.
    """
    return _parse_po(path, data, use_default).pairs


def po_header(path: str | PurePath, data: bytes | None = None) -> dict[str, str]:
    """The header fields of a .po file (`Language`, `Plural-Forms`, ...); {} when it has none."""
    return _header_fields(_parse_po(path, data, False).header or "")


def _header_fields(header: str) -> dict[str, str]:
    fields = {}
    for line in header.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


# === .mo ===
def _mo_strings(data: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """(original, translation) byte strings of a GNU .mo file, in table order."""
    if len(data) < 28:
        raise DataError(f"{where}: not a .mo file (only {len(data)} bytes)")
    (magic,) = struct.unpack("<I", data[:4])
    if magic == MO_MAGIC:
        order = "<"
    elif magic == int.from_bytes(MO_MAGIC.to_bytes(4, "little"), "big"):
        order = ">"
    else:
        raise DataError(f"{where}: not a .mo file (bad magic number {magic:#010x})")
    revision, count, orig_at, trans_at = struct.unpack_from(order + "4I", data, 4)
    if revision >> 16 > 1:
        raise DataError(f"{where}: unsupported .mo revision {revision >> 16}")
    if count > MAX_CATALOG_ENTRIES:
        raise DataError(f"{where}: {count} entries, more than {MAX_CATALOG_ENTRIES} (MAX_CATALOG_ENTRIES)")
    if count and max(orig_at, trans_at) + 8 * count > len(data):
        raise DataError(f"{where}: corrupt .mo file (truncated string table)")
    table = [struct.unpack_from(order + "2I", data, orig_at + 8 * i)
             + struct.unpack_from(order + "2I", data, trans_at + 8 * i) for i in range(count)]
    for i, (olen, ooff, tlen, toff) in enumerate(table):
        if ooff + olen > len(data) or toff + tlen > len(data):
            raise DataError(f"{where}: corrupt .mo file (string {i} points past the end)")
    if sum(olen + tlen for olen, _, tlen, _ in table) > MAX_MO_STRING_BYTES:  # before copying any
        raise DataError(f"{where}: its strings add up to more than {_size(MAX_MO_STRING_BYTES)} "
                        "(MAX_MO_STRING_BYTES; entries that point at shared data count each time)")
    return [(data[ooff:ooff + olen], data[toff:toff + tlen]) for olen, ooff, tlen, toff in table]


def _mo_header(strings: list[tuple[bytes, bytes]]) -> str:
    for orig, trans in strings:
        if orig == b"":
            return trans.decode("utf-8", errors="replace")
    return ""


def read_mo(path: str | PurePath, data: bytes | None = None) -> list[CatalogPair]:
    """The translated pairs of a compiled .mo file (msgfmt leaves out fuzzy and untranslated entries).

    Decodes with the header's charset (UTF-8 when none); `ref` is `FILE.mo:INDEX` (table index).
    """
    where = str(path)
    strings = _mo_strings(_catalog_bytes(path, data), where)
    charset = _header_fields(_mo_header(strings)).get("Content-Type", "").partition("charset=")[2].strip() or "utf-8"
    _text_charset(charset, where, ".mo")
    name = PurePath(path).name
    pairs: list[CatalogPair] = []
    for i, (orig, trans) in enumerate(strings):
        try:
            key, value = orig.decode(charset), trans.decode(charset)
        except UnicodeDecodeError:
            raise DataError(f"{where}: string {i} is not valid {charset} text") from None
        context: str | None = None
        if "\x04" in key:
            context, key = key.split("\x04", 1)
        if key == "" and context is None:
            continue  # the header
        ids, strs = key.split("\x00"), value.split("\x00")
        ref = f"{name}:{i}"
        if ids[0] and strs[0]:
            pairs.append(CatalogPair(ids[0], strs[0], context, ref))
        if len(ids) > 1 and ids[1] and len(strs) > 1 and strs[1]:
            pairs.append(CatalogPair(ids[1], strs[1], context, ref + "p"))
    return pairs


# === Language ===
def language_from_path(path: str | PurePath) -> str | None:
    """The language folder right above `LC_MESSAGES` (`de`, `de_DE`, `pt_BR`, `sr@latin`), if any."""
    parts = PurePath(path).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] == "LC_MESSAGES" and _LANG_DIR_RE.match(parts[i - 1]):
            return parts[i - 1]
    return None


def catalog_language(path: str | PurePath, data: bytes | None = None) -> str | None:
    """A catalogue's language: from its path (`.../de_DE/LC_MESSAGES/x.po`), else its header's `Language:`."""
    found = language_from_path(path)
    if found:
        return found
    is_mo = str(path).lower().endswith(".mo")
    try:
        if data is None:
            data = _read_bytes(Path(path), HEADER_SCAN_BYTES if not is_mo else None)
        if is_mo:
            return _header_fields(_mo_header(_mo_strings(data, str(path)))).get("Language", "") or None
    except DataError:
        return None
    m = _LANGUAGE_RE.search(data[:HEADER_SCAN_BYTES])
    return m.group(1).decode("ascii") or None if m else None


def normalise_language(code: str) -> str:
    """`de-DE` -> `de_de` (lower case, `_` separator) for comparisons."""
    return code.strip().replace("-", "_").lower()


def base_language(code: str) -> str:
    """`de_DE` -> `de`, `sr@latin` -> `sr`."""
    return re.split(r"[_@]", normalise_language(code), maxsplit=1)[0]


def language_matches(found: str | None, wanted: str) -> bool:
    """`wanted` = `de` matches de, de_DE, de_AT, ...; `wanted` = `pt_BR` matches only pt_BR (any case/separator)."""
    if not found:
        return False
    if re.search(r"[_@]", normalise_language(wanted)):
        return normalise_language(found) == normalise_language(wanted)
    return base_language(found) == normalise_language(wanted)


__all__ = ["MAX_CATALOG_BYTES", "MAX_CATALOG_ENTRIES", "MAX_MO_STRING_BYTES", "CatalogPair", "base_language",
           "catalog_language", "catalog_size_error", "language_from_path", "language_matches", "normalise_language",
           "po_header", "read_mo", "read_po"]
