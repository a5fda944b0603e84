"""The English opinion lexicon of Hu and Liu (`assets/lexicons/opinion-lexicon-en.tsv`), rebuilt from Debian.

Source: the data set `sentiments` of the Debian bookworm package r-cran-tidytext 0.4.1-1 (architecture
all), pinned by the .deb's SHA-256 (`PIN`). It is Hu and Liu's opinion lexicon (KDD 2004; Liu, Hu and
Cheng, WWW 2005): 6,786 English words, each positive or negative. Licence: MIT, per the package's
debian/copyright (`Files: *`, `License: MIT`).

The .deb (an ar archive, `ar_members` of `debian_de`) holds `data.tar.xz`; in it the data sets live in
R's lazy-load database `usr/lib/R/site-library/tidytext/data/Rdata.rdx` (gzip: an R serialization of a
list whose `variables` maps each object name to an (offset, length) pair into `Rdata.rdb`) and
`Rdata.rdb` (at each offset a 4-byte big-endian uncompressed length, then a zlib stream of the object's
R serialization). `sentiments` is a tibble with the character columns `word` and `sentiment`. A small
R XDR unserializer (`RReader`, formats 2 and 3, the SEXP types plain data needs) reads both.

Output: 6 comment lines (`# `: what, source, licence, command, counts), the header `word<TAB>sentiment`,
then one `word<TAB>positive|negative` row per entry in the source's order; "\\n" line endings.

    python -m sensorium.pipelines.datasets.opinion_lexicon [--deb PATH] [--out PATH]

Without `--deb` the package is fetched with `apt-get download r-cran-tidytext=0.4.1-1` (needs bookworm's
apt sources). Everything read is untrusted: the SHA-256 is checked before anything else, every size
read and decompressed is capped (`MAX_*`), and any fault is one DataError line.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import logging
import lzma
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.pipelines.datasets.debian_de import ar_members
from sensorium.runtime.atomic import atomic_write_text
from sensorium.runtime.errors import DataError
from sensorium.runtime.paths import read_capped

log = logging.getLogger(__name__)

MAX_DEB_BYTES = 64 * 2**20  # the .deb itself (the pinned one is 3 MB)
MAX_TAR_BYTES = 64 * 2**20  # data.tar decompressed (3.5 MB)
MAX_MEMBER_BYTES = 64 * 2**20  # Rdata.rdb / Rdata.rdx inside the tar (under 1 MB)
MAX_OBJECT_BYTES = 64 * 2**20  # one object decompressed from Rdata.rdb or Rdata.rdx
MAX_DEPTH = 64  # nesting of R objects (a data frame needs 4)
APT_TIMEOUT_S = 300


@dataclass(frozen=True)
class DebPin:
    """The package the lexicon is read from, and where in it."""

    package: str = "r-cran-tidytext"
    version: str = "0.4.1-1"
    sha256: str = "8d693a8772b57e2dbdc907aa946fbeeefb03ba3eb2bbea86d5c888a4d15956ad"
    rdx: str = "usr/lib/R/site-library/tidytext/data/Rdata.rdx"
    rdb: str = "usr/lib/R/site-library/tidytext/data/Rdata.rdb"
    object: str = "sentiments"


PIN = DebPin()
HEADER_LINES = (
    "# Opinion lexicon of Hu and Liu (KDD 2004; Liu, Hu and Cheng, WWW 2005): English words that carry a "
    "positive\n# or a negative opinion, collected from customer reviews.\n"
    f"# Source: Debian bookworm package {PIN.package} {PIN.version} (architecture all): the data set "
    f"`{PIN.object}` in\n# {PIN.rdb}, MIT licence per the package's debian/copyright.\n"
    "# Built by: python -m sensorium.pipelines.datasets.opinion_lexicon\n")
LABELS = ("positive", "negative")


def default_out() -> Path:
    """The repository's (installed) `sensorium.assets` lexicon file."""
    from sensorium.runtime.predictor import assets_dir

    return assets_dir() / "lexicons" / "opinion-lexicon-en.tsv"


# === R serialization (XDR) ===
NILVALUE, SYM, LIST, CHAR, LGL, INT, REAL, STR, VEC, REF = 254, 1, 2, 9, 10, 13, 14, 16, 19, 255
_REFUSED = {3: "CLOSXP", 4: "ENVSXP", 5: "PROMSXP", 6: "LANGSXP", 15: "CPLXSXP", 20: "EXPRSXP", 21: "BCODESXP",
            22: "EXTPTRSXP", 24: "RAWSXP", 25: "S4SXP", 238: "ALTREP_SXP", 242: "EMPTYENV_SXP", 253: "GLOBALENV_SXP"}
_VECTOR_FORMATS = {LGL: "i", INT: "i", REAL: "d"}
NA_INTEGER = -(2**31)
_LATIN1, _BYTES = 1 << 2, 1 << 1  # CHARSXP encoding flags (levels); UTF-8, ASCII and native read as UTF-8


@dataclass(frozen=True)
class Symbol:
    """An R symbol (SYMSXP)."""

    name: str


@dataclass
class RObject:
    """An R vector or pairlist: `value` is its elements (for a pairlist, (tag name or None, value) pairs)."""

    sexptype: int
    value: list[Any]
    attributes: dict[str, Any] = field(default_factory=dict)

    def names(self) -> list[str | None]:
        """The `names` attribute (an empty list without one)."""
        names = self.attributes.get("names")
        return list(names.value) if isinstance(names, RObject) and names.sexptype == STR else []


class RReader:
    """Reads one object of R's XDR serialization ("X\\n", format 2 or 3) from `data`."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.where, self.pos, self.refs = data, where, 0, []

    def error(self, what: str) -> DataError:
        return DataError(f"{self.where}: {what} (at byte {self.pos}); not a readable R serialization")

    def take(self, n: int) -> bytes:
        if n < 0 or n > len(self.data) - self.pos:
            raise self.error(f"truncated: {n} bytes wanted, {len(self.data) - self.pos} left")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def read(self) -> Any:
        """The whole serialization's object (None for NULL)."""
        if self.take(2) != b"X\n":
            raise self.error("no XDR header 'X\\n'")
        version = self.int()
        if version not in (2, 3):
            raise self.error(f"serialization format {version}, not 2 or 3")
        self.take(8)  # the writer's R version, the oldest R version that reads it
        if version == 3:
            self.take(self.int())  # native encoding ("UTF-8")
        obj = self.item(0)
        if self.pos != len(self.data):
            raise self.error(f"{len(self.data) - self.pos} bytes after the object")
        return obj

    def length(self, min_bytes: int) -> int:
        n = self.int()
        if n == -1:  # long vector: two more ints
            n = (self.int() << 32) + self.int()
        if n < 0 or n * min_bytes > len(self.data) - self.pos:
            raise self.error(f"a vector of {n} elements in {len(self.data) - self.pos} bytes")
        return n

    def item(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.error(f"objects nested deeper than {MAX_DEPTH} (MAX_DEPTH)")
        flags = self.int()
        kind, levels = flags & 0xFF, flags >> 12
        if kind == NILVALUE:
            return None
        if kind == REF:
            index = (flags >> 8) or self.int()
            if not 1 <= index <= len(self.refs):
                raise self.error(f"reference {index} to one of {len(self.refs)} objects")
            return self.refs[index - 1]
        if kind == SYM:
            name = self.item(depth + 1)
            if not isinstance(name, str):
                raise self.error("a symbol whose name is not a string")
            self.refs.append(Symbol(name))
            return self.refs[-1]
        if kind == LIST:
            return self.pairlist(flags, depth)
        if kind == CHAR:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self.take(n)
            if levels & _BYTES:
                raise self.error("a string of raw bytes")
            try:
                return raw.decode("latin-1" if levels & _LATIN1 else "utf-8")
            except UnicodeDecodeError:
                raise self.error("a string that is not UTF-8") from None
        if kind in _VECTOR_FORMATS:
            fmt = _VECTOR_FORMATS[kind]
            n = self.length(struct.calcsize(fmt))
            value = list(struct.unpack(f">{n}{fmt}", self.take(n * struct.calcsize(fmt))))
            if kind == LGL:
                value = [None if v == NA_INTEGER else bool(v) for v in value]
        elif kind in (STR, VEC):
            value = [self.item(depth + 1) for _ in range(self.length(4))]
        else:
            raise self.error(f"unsupported R SEXP type {kind} ({_REFUSED.get(kind, 'unknown')})")
        return RObject(kind, value, self.attributes(depth) if flags & (1 << 9) else {})

    def pairlist(self, flags: int, depth: int) -> RObject:
        """A LISTSXP chain, read along its CDRs without recursing."""
        obj = RObject(LIST, [])
        while True:
            attrs = self.attributes(depth) if flags & (1 << 9) else {}
            tag = self.item(depth + 1) if flags & (1 << 10) else None
            if tag is not None and not isinstance(tag, Symbol):
                raise self.error("a pairlist tag that is not a symbol")
            obj.value.append((tag.name if tag else None, self.item(depth + 1)))
            obj.attributes = obj.attributes or attrs
            flags = self.int()
            if flags & 0xFF == NILVALUE:
                return obj
            if flags & 0xFF != LIST:
                raise self.error(f"a pairlist ending in R type {flags & 0xFF}")

    def attributes(self, depth: int) -> dict[str, Any]:
        attrs = self.item(depth + 1)
        if not isinstance(attrs, RObject) or attrs.sexptype != LIST or any(t is None for t, _ in attrs.value):
            raise self.error("attributes that are not a tagged pairlist")
        return dict(attrs.value)


def unserialize(data: bytes, where: str) -> Any:
    """The object of one R XDR serialization."""
    return RReader(data, where).read()


# === The .deb ===
def _capped(decompress: Any, data: bytes, cap: int, where: str) -> bytes:
    """`decompress.decompress(data, cap + 1)`, refused past `cap` bytes or on corrupt data."""
    try:
        out = decompress.decompress(data, cap + 1)
    except (zlib.error, lzma.LZMAError, EOFError, OSError) as exc:
        raise DataError(f"{where}: corrupt compressed data ({exc})") from None
    if len(out) > cap:
        raise DataError(f"{where}: more than {cap} bytes decompressed; refusing it")
    if not decompress.eof:
        raise DataError(f"{where}: truncated compressed data")
    return out


def read_deb(path: Path, pin: DebPin = PIN) -> dict[str, bytes]:
    """The pinned members (rdx, rdb paths -> bytes) of the .deb at `path`, once its SHA-256 matches."""
    data = read_capped(path, MAX_DEB_BYTES, "the package (not the pinned one)")
    got = hashlib.sha256(data).hexdigest()
    if got != pin.sha256:
        raise DataError(f"{path}: SHA-256 {got} is not the pinned {pin.sha256} of {pin.package} {pin.version}")
    members = {name: body for name, body in ar_members(data) if name.startswith("data.tar")}
    if "data.tar.xz" in members:
        tar = _capped(lzma.LZMADecompressor(), members["data.tar.xz"], MAX_TAR_BYTES, f"{path}: data.tar.xz")
    elif "data.tar.gz" in members:
        tar = _capped(zlib.decompressobj(31), members["data.tar.gz"], MAX_TAR_BYTES, f"{path}: data.tar.gz")
    else:
        raise DataError(f"{path}: no data.tar.xz or data.tar.gz member (found {sorted(members) or 'none'}; "
                        "Python's tarfile cannot read zstd)")
    wanted, found = {pin.rdx, pin.rdb}, {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile() and member.size <= MAX_MEMBER_BYTES:
                    found[name] = archive.extractfile(member).read(MAX_MEMBER_BYTES + 1)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: corrupt data.tar ({exc})") from None
    if missing := sorted(wanted - found.keys()):
        raise DataError(f"{path}: no regular file {', '.join(missing)} of at most {MAX_MEMBER_BYTES} bytes")
    return found


def download_deb(folder: Path, pin: DebPin = PIN) -> Path:
    """`apt-get download` the pinned package into `folder`; its path."""
    cmd = ["apt-get", "download", f"{pin.package}={pin.version}"]
    try:
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"cannot run {' '.join(cmd)} ({exc}); pass --deb with the downloaded package") from None
    debs = sorted(folder.glob(f"{pin.package}_*.deb"))
    if done.returncode != 0 or len(debs) != 1:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        raise DataError(f"{' '.join(cmd)} failed ({lines[-1] if lines else f'exit status {done.returncode}'}); "
                        "pass --deb with the downloaded package")
    return debs[0]


# === The lexicon ===
def _object_bytes(rdb: bytes, offset: int, length: int, where: str) -> bytes:
    """One object's serialization from Rdata.rdb: a 4-byte big-endian length, then zlib."""
    if not (0 <= offset and 4 <= length and offset + length <= len(rdb)):
        raise DataError(f"{where}: (offset {offset}, length {length}) outside the {len(rdb)}-byte Rdata.rdb")
    blob = rdb[offset:offset + length]
    size = struct.unpack(">I", blob[:4])[0]
    if size > MAX_OBJECT_BYTES:
        raise DataError(f"{where}: {size} bytes uncompressed, more than {MAX_OBJECT_BYTES} (MAX_OBJECT_BYTES)")
    out = _capped(zlib.decompressobj(), blob[4:], size, where)
    if len(out) != size:
        raise DataError(f"{where}: {len(out)} bytes decompressed, the header says {size}")
    return out


def _lookup(obj: Any, name: str, where: str) -> Any:
    if not isinstance(obj, RObject) or obj.sexptype != VEC or name not in obj.names():
        raise DataError(f"{where}: no element `{name}`")
    return obj.value[obj.names().index(name)]


def read_lexicon(members: dict[str, bytes], pin: DebPin = PIN) -> list[tuple[str, str]]:
    """(word, sentiment) rows of the pinned data set, in the source's order."""
    gz = zlib.decompressobj(31)
    index = unserialize(_capped(gz, members[pin.rdx], MAX_OBJECT_BYTES, pin.rdx), pin.rdx)
    compressed = _lookup(index, "compressed", pin.rdx)
    if not isinstance(compressed, RObject) or compressed.value not in ([True], [1]):
        raise DataError(f"{pin.rdx}: compression {getattr(compressed, 'value', compressed)}, not zlib (TRUE)")
    where = f"{pin.rdb}: {pin.object}"
    entry = _lookup(_lookup(index, "variables", pin.rdx), pin.object, pin.rdx)
    if not isinstance(entry, RObject) or entry.sexptype != INT or len(entry.value) != 2:
        raise DataError(f"{pin.rdx}: the entry of `{pin.object}` is not an (offset, length) pair")
    frame = unserialize(_object_bytes(members[pin.rdb], *entry.value, where), where)
    columns = [_lookup(frame, name, where) for name in ("word", "sentiment")]
    if any(not isinstance(c, RObject) or c.sexptype != STR for c in columns) or \
            len(columns[0].value) != len(columns[1].value):
        raise DataError(f"{where}: `word` and `sentiment` are not character columns of one length")
    rows = list(zip(columns[0].value, columns[1].value))
    for i, (word, label) in enumerate(rows, start=1):
        if not word or label not in LABELS or any(c in word for c in "\t\n\r"):
            raise DataError(f"{where}: row {i} ({word!r}, {label!r}) is not a word with positive or negative")
    return rows


def lexicon_text(rows: list[tuple[str, str]]) -> str:
    """The file's text: comment lines, header, rows."""
    counts = Counter(label for _, label in rows)
    summary = (f"# {len(rows):,} rows: {counts['positive']:,} positive, {counts['negative']:,} negative, "
               "in the source's order.\n")
    return HEADER_LINES + summary + "word\tsentiment\n" + "".join(f"{w}\t{s}\n" for w, s in rows)


def build_lexicon(out: Path | None = None, deb: Path | None = None, pin: DebPin = PIN) -> Path:
    """Write the lexicon to `out` (default `default_out()`) from `deb` (default: `apt-get download`)."""
    out = Path(out) if out is not None else default_out()
    with tempfile.TemporaryDirectory(prefix="sensorium-tidytext-") as tmp:
        path = Path(deb) if deb is not None else download_deb(Path(tmp), pin)
        rows = read_lexicon(read_deb(path, pin), pin)
    atomic_write_text(out, lexicon_text(rows))
    log.info("wrote %s: %d rows from %s %s", out, len(rows), pin.package, pin.version)
    return out


def main(argv: list[str] | None = None) -> int:
    from sensorium.runtime.errors import SensoriumError

    parser = argparse.ArgumentParser(prog="python -m sensorium.pipelines.datasets.opinion_lexicon",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb", type=Path, help="a local copy of the pinned .deb (default: apt-get download)")
    parser.add_argument("--out", type=Path, help="the file to write (default: the bundled assets' lexicon)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        build_lexicon(args.out, args.deb)
    except SensoriumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
