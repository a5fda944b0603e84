"""`builtin:debian-de`: extra English -> German training pairs from the gettext catalogues of Debian packages.

Some 1,800 packages of Debian's `main` archive (GNOME, KDE and Xfce applications, GIMP, LibreOffice
helpers, git, coreutils, iso-codes, ...) ship German translations as compiled catalogues
(`usr/share/locale/de/LC_MESSAGES/*.mo`). `build_debian_corpus` finds them through the archive's
`Contents` indices, downloads the packages once (at set-up time, never while training; about 2 GB for
the packages under `max_deb_bytes`), reads the catalogues straight out of the `.deb` files (ar archive
-> data.tar.xz/gz/bz2), cleans the pairs like the UI corpus and writes:

    OUT/train.tsv     source<TAB>target, one pair a line (escaped like the UI corpus)
    OUT/corpus.json   mirror, release, counts, and per package: version, licence, catalogues, pairs
    OUT/CORPUS.md     the corpus card

It has a training split only: it is meant as `data.extra_specs` next to `builtin:ui-de`, whose
validation and test sources are removed from it when a run loads it (`data.load_train_validation`), so
no evaluation sentence is ever seen in training. `mirror` may be a `file://` URL of a local mirror
(the same layout: `dists/RELEASE/InRelease` or `Release`, `main/Contents-*.gz`, `binary-ARCH/Packages.xz`,
the pool files).

The archive is plain HTTP, so nothing it sends is trusted: the indices must match the SHA-256 list of
the `Release` file (whose signature `gpgv` checks against Debian's keyring when both are installed;
otherwise one warning says the check is unsigned), every package must match the SHA-256 of its
`Packages` entry, and every download, decompressed stream, archive member and table has a cap (the
`MAX_*` constants below). A package that fails any of this is recorded in corpus.json and skipped.
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import itertools
import json
import logging
import lzma
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.datasets.catalogs import MAX_CATALOG_BYTES, catalog_size_error, read_mo
from sensorium.pipelines.datasets.ui_de import (
    HELD_OUT_PROJECTS,
    MAX_CHARS,
    drop_reason,
    held_out_card_lines,
    held_out_project,
)
from sensorium.pipelines.translation.sources import ParallelItems, escape_tsv, read_pairs_table
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
CORPUS_FILE, CARD_NAME = "corpus.json", "CORPUS.md"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_RELEASE = "bookworm"
DEFAULT_MAX_DEB_BYTES = 20_000_000
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")  # checks the Release signature

# Caps on what the archive sends (a .deb itself may be at most the Size its Packages entry gives).
MAX_RELEASE_BYTES = 16 * 2**20  # InRelease / Release / Release.gpg: real ones are a few hundred KB
MAX_INDEX_BYTES = 512 * 2**20  # a Contents-*.gz or Packages.xz download: real ones are tens of MB
MAX_INDEX_TEXT_BYTES = 4 * 2**30  # an index decompressed: streamed line by line, so this bounds time, not memory
MAX_INDEX_LINE_BYTES = 2**20  # one line of an index, held whole: real lines are under a few KB
MAX_INDEX_RECORDS = 300_000  # packages of a Packages index, catalogue paths of a Contents index (kept in
#                              memory): Debian main has ~65,000 packages and a few thousand such paths
MAX_DEB_DATA_BYTES = 512 * 2**20  # a .deb's data.tar decompressed (streamed): bounds the time per package
MAX_DEB_TAR_MEMBERS = 200_000  # entries of one data.tar (tarfile keeps each header): real packages, < 50,000
MAX_TAR_HEADER_BYTES = 2**20  # a pax or GNU long-name header, which tarfile reads whole: real ones, < 4 KB
COPYRIGHT_SCAN_BYTES = 2**20  # only the start of a copyright file is read (its first License: line)
_CHUNK = 2**20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_DECOMPRESSORS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    "data.tar.xz": lzma.LZMAFile, "data.tar.gz": lambda f: gzip.GzipFile(fileobj=f), "data.tar.bz2": bz2.BZ2File,
    "data.tar": lambda f: f}
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)  # corrupt compressed data


def default_debian_corpus_dir(language: str = "de") -> Path:
    """Where `sensorium data debian-de` keeps the corpus: CACHE/datasets/debian-de-1."""
    return cache_dir("datasets", f"debian-{language}-{CORPUS_VERSION}")


@dataclass
class DebPackage:
    """One package of the archive that ships catalogues of the language."""

    name: str
    version: str = ""
    filename: str = ""  # path in the pool, relative to the mirror
    size: int = 0
    catalogues: list[str] = field(default_factory=list)  # paths inside the package
    sha256: str = ""  # from the Packages index: the download must match it


@dataclass
class _Read:
    name: str
    pairs: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    license: str = "unknown"
    error: str | None = None
    skipped_files: list[str] = field(default_factory=list)


# === Downloads ===
def _size(n: int) -> str:
    """`n` bytes for a message: "32 MiB", or "1000 bytes" when not whole MiB."""
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n} bytes"


class _DownloadFailed(DataError):
    """The URL could not be fetched at all (as opposed to what it sent being refused)."""


def _fetch(url: str, max_bytes: int, cap: str, timeout: float = 300) -> bytes:
    """The body at `url`, read in chunks; DataError naming the URL and `cap` once it passes `max_bytes`."""
    def too_big() -> DataError:
        return DataError(f"{url}: more than {max_bytes} bytes ({cap}); refusing it")

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            declared = r.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise too_big()
            body = bytearray()
            while chunk := r.read(min(_CHUNK, max_bytes + 1 - len(body))):
                body += chunk
                if len(body) > max_bytes:
                    raise too_big()
            return bytes(body)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _DownloadFailed(f"cannot download {url} ({getattr(exc, 'reason', None) or exc})") from None


def _check_sha256(url: str, data: bytes, want: str, listed_in: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != want.lower():
        raise DataError(f"{url}: SHA-256 {got} does not match {want} from {listed_in}; refusing it "
                        "(tampered or corrupt download)")


# === Release file ===
def release_hashes(dist: str) -> dict[str, tuple[str, int]] | None:
    """path under `dist` -> (SHA-256, size) from the archive's `InRelease` (or `Release` + `Release.gpg`).

    With gpgv and `DEBIAN_KEYRING` installed the signature must verify (DataError otherwise, a missing
    Release included); without them the Release is used unverified, with one warning, and when there is
    none at all the indices go unchecked, with one warning (None).
    """
    gpgv = shutil.which("gpgv")
    verifier = (gpgv, DEBIAN_KEYRING) if gpgv and DEBIAN_KEYRING.is_file() else None
    text = _release_text(dist, verifier)
    if text is None:
        if verifier:
            raise DataError(f"{dist}: no InRelease or Release file, so its indices cannot be verified")
        log.warning("%s: no Release file; the Contents and Packages indices are not checked", dist)
        return None
    if not verifier:
        log.warning("%s: the Release file's signature is not verified (needs gpgv and %s); the indices are "
                    "checked against it unsigned", dist, DEBIAN_KEYRING)
    return release_sha256(text, f"{dist}/Release")


def _release_text(dist: str, verifier: tuple[str, Path] | None) -> str | None:
    """The text of InRelease, else of Release, signature-checked when `verifier`; None when neither downloads."""
    signed = _try_fetch(f"{dist}/InRelease")
    if signed is not None:
        return _gpgv(verifier, f"{dist}/InRelease", signed) if verifier else _clearsigned_text(signed)
    plain = _try_fetch(f"{dist}/Release")
    if plain is None:
        return None
    if verifier:
        signature = _try_fetch(f"{dist}/Release.gpg")
        if signature is None:
            raise DataError(f"{dist}/Release: not signed (no InRelease or Release.gpg), so it cannot be verified "
                            f"against {verifier[1]}")
        return _gpgv(verifier, f"{dist}/Release", plain, signature)
    return plain.decode("utf-8", errors="replace")


def _try_fetch(url: str) -> bytes | None:
    """A Release file, or None when it cannot be downloaded (one that is too large still raises)."""
    try:
        return _fetch(url, MAX_RELEASE_BYTES, "MAX_RELEASE_BYTES")
    except _DownloadFailed:
        return None


def _gpgv(verifier: tuple[str, Path], url: str, data: bytes, detached: bytes | None = None) -> str:
    """The signed text of `data` (clearsigned, or signed by `detached`), once gpgv verified it.

    Like apt: at least one good signature by a key of the keyring and no bad one (a signature by a key
    the keyring lacks, e.g. a newer archive key, is not an error by itself)."""
    gpgv, keyring = verifier
    with tempfile.TemporaryDirectory(prefix="sensorium-gpgv-") as tmp:
        signed, out = Path(tmp) / "signed", Path(tmp) / "out"
        signed.write_bytes(data)
        files = [str(signed)]
        if detached is not None:
            (Path(tmp) / "signature").write_bytes(detached)
            files.insert(0, str(Path(tmp) / "signature"))
        cmd = [gpgv, "--homedir", tmp, "--status-fd", "1", "--keyring", str(keyring), "--output", str(out), *files]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"{url}: cannot run gpgv to check its signature ({exc})") from None
        status = {w[1] for w in map(str.split, done.stdout.splitlines()) if len(w) > 1 and w[0] == "[GNUPG:]"}
        if "VALIDSIG" not in status or "BADSIG" in status or (detached is None and not out.is_file()):
            lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
            raise DataError(f"{url}: the signature does not verify against {keyring} "
                            f"({lines[-1] if lines else f'gpgv exit status {done.returncode}'})")
        return (out.read_bytes() if detached is None else data).decode("utf-8", errors="replace")


def _clearsigned_text(data: bytes) -> str:
    """The text of a clearsigned file (InRelease) without checking its signature."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----\n"):
        return text
    body = text.partition("\n\n")[2].partition("\n-----BEGIN PGP SIGNATURE-----")[0]
    return "\n".join(line[2:] if line.startswith("- ") else line for line in body.split("\n"))


def release_sha256(text: str, where: str = "Release") -> dict[str, tuple[str, int]]:
    """path -> (SHA-256, size) from the `SHA256:` field of a Release file's text."""
    out: dict[str, tuple[str, int]] = {}
    in_field = False
    for line in text.splitlines():
        if not line[:1].isspace():
            in_field = line.rstrip() == "SHA256:"
            continue
        parts = line.split()
        if in_field and len(parts) == 3 and _SHA256_RE.fullmatch(parts[0]) and parts[1].isdigit():
            out[parts[2]] = (parts[0], int(parts[1]))
    if not out:
        raise DataError(f"{where}: the Release file has no SHA256 list")
    return out


def _fetch_index(dist: str, path: str, listed: dict[str, tuple[str, int]] | None) -> bytes:
    """An index file under `dist`, checked against the Release file's SHA256 list when there is one."""
    url = f"{dist}/{path}"
    if listed is None:
        return _fetch(url, MAX_INDEX_BYTES, "MAX_INDEX_BYTES")
    if path not in listed:
        raise DataError(f"{url}: not in the Release file's SHA256 list; refusing an unverifiable index")
    want, size = listed[path]
    data = _fetch(url, min(size, MAX_INDEX_BYTES), "its size in the Release file, at most MAX_INDEX_BYTES")
    _check_sha256(url, data, want, "the Release file")
    return data


# === Archive indices ===
def _index_lines(stream: BinaryIO, where: str) -> Iterator[str]:
    """The lines of a decompressing stream, read in chunks; DataError past MAX_INDEX_TEXT_BYTES in all or
    MAX_INDEX_LINE_BYTES in a line, or on corrupt data."""
    total, pending = 0, b""
    try:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
            if total > MAX_INDEX_TEXT_BYTES:
                raise DataError(f"{where}: more than {_size(MAX_INDEX_TEXT_BYTES)} decompressed "
                                "(MAX_INDEX_TEXT_BYTES); refusing it")
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            if len(pending) > MAX_INDEX_LINE_BYTES:
                raise DataError(f"{where}: a line longer than {_size(MAX_INDEX_LINE_BYTES)} (MAX_INDEX_LINE_BYTES)")
            for line in lines:
                yield line.decode("utf-8", errors="replace").rstrip("\r")
    except _STREAM_ERRORS as exc:
        raise DataError(f"{where}: unreadable index ({exc})") from None
    if pending:
        yield pending.decode("utf-8", errors="replace").rstrip("\r")


def _too_many_records(where: str) -> DataError:
    return DataError(f"{where}: more than {MAX_INDEX_RECORDS} records (MAX_INDEX_RECORDS); refusing it")


def catalogue_index(contents: bytes, language: str, where: str = "Contents index") -> dict[str, list[str]]:
    """package -> catalogue paths, from a `Contents-ARCH.gz` index (`path   section/pkg,section/pkg`)."""
    pattern = re.compile(rf"^(\S*/locale/{re.escape(language)}(?:_{re.escape(language.upper())})?/LC_MESSAGES/"
                         r"[^/\s]+\.mo)\s+(\S+)$")
    out: dict[str, list[str]] = {}
    records = 0
    for line in _index_lines(gzip.GzipFile(fileobj=io.BytesIO(contents)), where):
        m = pattern.match(line)
        if m:
            for qualified in m.group(2).split(","):
                records += 1
                if records > MAX_INDEX_RECORDS:
                    raise _too_many_records(where)
                out.setdefault(qualified.rsplit("/", 1)[-1], []).append(m.group(1))
    return out


_PACKAGE_FIELDS = frozenset({"Package", "Version", "Filename", "Size", "SHA256"})


def package_index(packages_xz: bytes, where: str = "Packages index") -> dict[str, dict[str, str]]:
    """package -> its Version, Filename, Size and SHA256 fields, from a `Packages.xz` index."""
    out: dict[str, dict[str, str]] = {}
    fields: dict[str, str] = {}
    for line in itertools.chain(_index_lines(lzma.LZMAFile(io.BytesIO(packages_xz)), where), [""]):
        if line.strip():
            key, sep, value = line.partition(": ")
            if sep and key in _PACKAGE_FIELDS:
                fields[key] = value
            continue
        if "Package" in fields and "Filename" in fields:
            out[fields["Package"]] = fields
            if len(out) > MAX_INDEX_RECORDS:
                raise _too_many_records(where)
        fields = {}
    return out


def find_packages(mirror: str, release: str, language: str, *, arch: str = "amd64",
                  max_deb_bytes: int = DEFAULT_MAX_DEB_BYTES,
                  held_out: list[str] | None = None) -> tuple[list[DebPackage], list[str]]:
    """(packages to read, names left out as larger than `max_deb_bytes`), sorted by name.

    A package of a held-out project (`ui_de.held_out_project`: by its name or its catalogues' folders) is
    never read; its name is appended to `held_out` when given. The indices are checked against the Release
    file (`release_hashes`)."""
    dist = f"{mirror.rstrip('/')}/dists/{release}"
    listed = release_hashes(dist)
    found: dict[str, list[str]] = {}
    for name in ("Contents-all.gz", f"Contents-{arch}.gz"):
        path = f"main/{name}"
        for pkg, files in catalogue_index(_fetch_index(dist, path, listed), language, f"{dist}/{path}").items():
            found.setdefault(pkg, []).extend(files)
    path = f"main/binary-{arch}/Packages.xz"
    index = package_index(_fetch_index(dist, path, listed), f"{dist}/{path}")
    chosen, too_big = [], []
    for pkg in sorted(found):
        meta = index.get(pkg)
        if meta is None:
            continue
        project = held_out_project(pkg, found[pkg])
        if project:
            log.warning("%s: left out, a package of the held-out project %s (builtin:heldout-de)", pkg, project)
            if held_out is not None:
                held_out.append(pkg)
            continue
        size = int(meta["Size"]) if meta.get("Size", "").isdigit() else 0
        if size > max_deb_bytes:
            too_big.append(pkg)
            continue
        chosen.append(DebPackage(pkg, meta.get("Version", ""), meta["Filename"], size, sorted(set(found[pkg])),
                                 meta.get("SHA256", "")))
    return chosen, too_big


# === One package ===
def _download_deb(mirror: str, pkg: DebPackage, max_bytes: int) -> bytes:
    """A package's .deb, at most its index Size, refused unless its SHA-256 is the Packages index's."""
    url = f"{mirror.rstrip('/')}/{pkg.filename}"
    if not _SHA256_RE.fullmatch(pkg.sha256.lower()):
        raise DataError(f"{url}: the Packages index gives no SHA256 for it; refusing an unverifiable package")
    data = _fetch(url, pkg.size or max_bytes, "its Size in the Packages index")
    _check_sha256(url, data, pkg.sha256, "the Packages index")
    return data


_AR_MAGIC = b"!<arch>\n"
_AR_HEADER_BYTES = 60
_AR_SIZE_RE = re.compile(rb"[0-9]+ *")


def ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each member of an ar archive (a `.deb`); DataError on any malformed header."""
    if data[:len(_AR_MAGIC)] != _AR_MAGIC:
        raise DataError("not an ar archive")
    pos = len(_AR_MAGIC)
    while pos < len(data):
        name, size = _ar_header(data, pos)
        start = pos + _AR_HEADER_BYTES
        yield name, data[start:start + size]
        pos = start + size + (size & 1)  # members start at even offsets


def _ar_header(data: bytes, pos: int) -> tuple[str, int]:
    """(name, size) of the ar member header at `pos`, every field checked (size within the file)."""
    header = data[pos:pos + _AR_HEADER_BYTES]
    where = f"ar member header at offset {pos}"
    if len(header) < _AR_HEADER_BYTES:
        raise DataError(f"truncated {where} ({len(header)} of {_AR_HEADER_BYTES} bytes)")
    if header[58:60] != b"`\n":
        raise DataError(f"corrupt {where} (no end marker)")
    try:
        name = header[:16].decode("ascii").strip().rstrip("/")
    except UnicodeDecodeError:
        raise DataError(f"corrupt {where} (the name is not ASCII)") from None
    if not name or not name.isprintable():
        raise DataError(f"corrupt {where} (name {name!r})")
    if not _AR_SIZE_RE.fullmatch(header[48:58]):
        raise DataError(f"corrupt {where} (size {header[48:58].decode('ascii', 'replace')!r} is not a decimal "
                        "number)")
    size, left = int(header[48:58]), len(data) - pos - _AR_HEADER_BYTES
    if size > left:
        raise DataError(f"corrupt {where} (a {size}-byte member, only {left} bytes left in the file)")
    return name, size


def _license(copyright_text: str) -> str:
    """The first `License:` of a machine-readable debian/copyright file (else 'see the package')."""
    m = re.search(r"^License:\s*(\S.*)$", copyright_text, re.M)
    return m.group(1).strip() if m else "see the package's copyright file"


class _CappedReader:
    """A read-only stream over `raw` that raises DataError once more than `limit` bytes came out of it."""

    def __init__(self, raw: BinaryIO, limit: int, message: str) -> None:
        self.raw, self.limit, self.message, self.count = raw, limit, message, 0

    def read(self, size: int = -1) -> bytes:
        room = self.limit + 1 - self.count
        data = self.raw.read(room if size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise DataError(self.message)
        return data


_LONG_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                      tarfile.SOLARIS_XHDTYPE)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses a pax or GNU long-name header over MAX_TAR_HEADER_BYTES: tarfile reads those whole into memory.

    `_proc_member` is where every tarfile from 3.10 on turns a header block into a member."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _LONG_HEADER_TYPES and self.size > MAX_TAR_HEADER_BYTES:
            raise DataError(f"a {self.size}-byte extended tar header, more than {_size(MAX_TAR_HEADER_BYTES)} "
                            "(MAX_TAR_HEADER_BYTES)")
        return super()._proc_member(tar)


def read_deb(data: bytes, package: DebPackage) -> _Read:
    """The catalogue pairs of one `.deb` (their order in the package), its licence and any errors."""
    out = _Read(package.name)
    try:
        members = [(name, body) for name, body in ar_members(data) if name.startswith("data.tar")]
        if not members:
            raise DataError("no data.tar member (not a Debian package)")
        for name, body in members:
            opener = _DECOMPRESSORS.get(name)
            if opener is None:
                out.error = f"unsupported member {name}"
                return out
            stream = _CappedReader(opener(io.BytesIO(body)), MAX_DEB_DATA_BYTES,
                                   f"{name}: more than {_size(MAX_DEB_DATA_BYTES)} decompressed (MAX_DEB_DATA_BYTES)")
            with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tar:
                _read_data_tar(tar, name, package, out)
    except (DataError, tarfile.TarError, *_STREAM_ERRORS) as exc:
        out.error = str(exc) or type(exc).__name__
    return out


def _read_data_tar(tar: tarfile.TarFile, name: str, package: DebPackage, out: _Read) -> None:
    """Read the wanted catalogues and the copyright file of a data.tar stream into `out`."""
    wanted = set(package.catalogues)
    copyright_path = f"usr/share/doc/{package.name}/copyright"
    for count, member in enumerate(tar, start=1):
        if count > MAX_DEB_TAR_MEMBERS:
            raise DataError(f"{name}: more than {MAX_DEB_TAR_MEMBERS} entries (MAX_DEB_TAR_MEMBERS)")
        path = member.name.removeprefix("./")
        if not member.isfile() or (path not in wanted and path != copyright_path):
            continue
        body = tar.extractfile(member)
        if path == copyright_path:
            out.license = _license(body.read(COPYRIGHT_SCAN_BYTES).decode("utf-8", errors="replace"))
            continue
        try:
            if member.size > MAX_CATALOG_BYTES:
                raise catalog_size_error(path)
            found = read_mo(path, body.read(MAX_CATALOG_BYTES + 1))
        except DataError as exc:
            out.skipped_files.append(f"{path} ({exc})")
            continue
        out.files.append(path)
        out.pairs.extend((p.source, p.target) for p in found)


# === Build ===
def build_debian_corpus(out: Path | None = None, *, language: str = "de", mirror: str = DEFAULT_MIRROR,
                        release: str = DEFAULT_RELEASE, max_deb_bytes: int = DEFAULT_MAX_DEB_BYTES,
                        workers: int = 6, overwrite: bool = False) -> Path:
    """Build the Debian catalogue corpus into `out` (default `default_debian_corpus_dir(language)`).

    An existing corpus is returned as it is unless `overwrite`. The folder appears whole or not at all.
    A package that cannot be downloaded or read is recorded in corpus.json and skipped."""
    from sensorium.pipelines.common.progress import progress

    out = Path(out) if out is not None else default_debian_corpus_dir(language)
    if (out / CORPUS_FILE).is_file() and not overwrite:
        log.info("the Debian catalogue corpus is already built in %s: reusing it", out)
        return out
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not a Debian catalogue corpus; pick another folder or pass overwrite")
    held_out: list[str] = []
    packages, too_big = find_packages(mirror, release, language, max_deb_bytes=max_deb_bytes, held_out=held_out)
    if not packages:
        raise DataError(f"{mirror} {release}: no package ships {language} catalogues")
    log.info("reading the %s catalogues of %d Debian packages (%.0f MB) from %s", language, len(packages),
             sum(p.size for p in packages) / 1e6, mirror)

    def one(pkg: DebPackage) -> _Read:
        try:
            return read_deb(_download_deb(mirror, pkg, max_deb_bytes), pkg)
        except DataError as exc:
            return _Read(pkg.name, error=str(exc))

    seen: set[tuple[str, str]] = set()
    sources: list[str] = []
    targets: list[str] = []
    dropped: Counter = Counter()
    per_package: dict[str, dict] = {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for pkg, read in zip(packages, progress(pool.map(one, packages), total=len(packages), unit="package",
                                                desc="Debian catalogues")):
            kept = 0
            for s, t in read.pairs:
                reason = drop_reason(s, t) or ("duplicate" if (s, t) in seen else None)
                if reason:
                    dropped[reason] += 1
                    continue
                seen.add((s, t))
                sources.append(s)
                targets.append(t)
                kept += 1
            per_package[pkg.name] = {"version": pkg.version, "license": read.license, "files": read.files,
                                     "skipped_files": read.skipped_files, "raw_pairs": len(read.pairs),
                                     "pairs": kept, **({"error": read.error} if read.error else {})}
    if not sources:
        raise DataError(f"no {language} translations could be read from {mirror}")
    meta = {"name": f"debian-{language}", "version": CORPUS_VERSION, "source_language": "en", "language": language,
            "mirror": mirror, "release": release, "max_deb_bytes": max_deb_bytes, "max_chars": MAX_CHARS,
            "pairs": len(sources), "splits": {"train": len(sources)},
            "identical": {"train": sum(s == t for s, t in zip(sources, targets))},
            "dropped": dict(sorted(dropped.items())), "left_out_as_too_large": too_big,
            "held_out": {"projects": list(HELD_OUT_PROJECTS), "left_out": held_out}, "packages": per_package}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        lines = ["source\ttarget"] + [f"{escape_tsv(s)}\t{escape_tsv(t)}" for s, t in zip(sources, targets)]
        (tmp / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (tmp / CORPUS_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(corpus_card(meta), encoding="utf-8")
    failed = sum(1 for p in per_package.values() if "error" in p)
    log.info("built the Debian catalogue corpus in %s: %d pairs from %d packages (%d unreadable)", out,
             len(sources), len(packages) - failed, failed)
    return out


# === Read ===
def read_debian_corpus(folder: Path) -> dict[str, ParallelItems]:
    """{"train": pairs} of a corpus built by `build_debian_corpus` (ids `debian-de/train:5`)."""
    folder = Path(folder)
    if not (folder / CORPUS_FILE).is_file():
        raise DataError(f"builtin:debian-de is not built yet in {folder}; build it once with "
                        "`sensorium data debian-de` (downloads the packages from the Debian archive)")
    try:
        name = json.loads((folder / CORPUS_FILE).read_text(encoding="utf-8")).get("name", "debian-de")
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / CORPUS_FILE}: unreadable corpus description ({exc})") from None
    return {"train": read_pairs_table(folder / "train.tsv", id_prefix=f"{name}/train")}


# === Card ===
def corpus_card(meta: dict) -> str:
    """CORPUS.md for a Debian catalogue corpus description."""
    lang = meta["language"]
    pkgs = meta["packages"]
    ranked = sorted(pkgs.items(), key=lambda kv: -kv[1]["pairs"])
    failed = [n for n, p in pkgs.items() if "error" in p]
    dropped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in meta["dropped"].items()) or "nothing"
    lines = [
        f"# debian-{lang} corpus card (version {meta['version']})", "",
        f"English -> {lang} pairs of software messages (desktop and command-line applications) from the compiled "
        f"gettext catalogues (`locale/{lang}/LC_MESSAGES/*.mo`) of {len(pkgs)} packages of Debian {meta['release']} "
        f"`main` ({meta['mirror']}), as translated by each project's translators. Built by "
        "`sensorium.pipelines.datasets.debian_de.build_debian_corpus`; read with the data spec "
        f"`builtin:debian-{lang}` (a training split only).", "",
        "## Use", "",
        f"Extra training data next to `builtin:ui-{lang}` (`data.extra_specs`). A run drops every pair whose "
        f"normalised source is in its main data's validation or test split, so evaluation on `builtin:ui-{lang}` "
        "never sees a training sentence.", "",
        "## Counts", "",
        f"- {meta['pairs']} pairs kept, {meta['identical']['train']} with the target equal to the source",
        f"- dropped: {dropped} (no letter in the source; longer than {meta['max_chars']} characters; a symbolic "
        "message id; an exact duplicate of an earlier pair, packages in name order)",
        f"- packages larger than {meta['max_deb_bytes'] / 1e6:.0f} MB left out: {len(meta['left_out_as_too_large'])}",
        f"- packages that could not be read: {len(failed)}" + (f" ({', '.join(failed[:20])})" if failed else ""),
        *held_out_card_lines(meta), "",
        "## Largest sources", "", "| package | version | licence | catalogues | pairs kept |", "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {p['version']} | {p['license']} | {len(p['files'])} | {p['pairs']} |" for n, p in ranked[:40]]
    lines += [
        "", f"corpus.json lists all {len(pkgs)} packages with their versions, licences and catalogue files.", "",
        "## Caveats", "",
        "- Desktop and terminal software: menus, dialogs, error messages, `--help` lines; closer to web UI strings "
        "than news text, but with its own terms (GNOME, KDE, GIMP, GCC, git).",
        "- Translations are volunteer work of varying review; some catalogues are partial or stale.",
        "- Licences: each package's translations are under that package's licence (the table gives the first "
        "licence of its copyright file; corpus.json has all packages). Most are GPL or LGPL: check them before "
        "redistributing the corpus.",
        "- Debian's archive changes with point releases: the versions read are recorded, and a rebuild later "
        "may read newer ones.",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["CORPUS_VERSION", "DEBIAN_KEYRING", "DEFAULT_MIRROR", "DEFAULT_RELEASE", "DebPackage", "ar_members",
           "build_debian_corpus", "catalogue_index", "corpus_card", "default_debian_corpus_dir", "find_packages",
           "package_index", "read_deb", "read_debian_corpus", "release_hashes", "release_sha256"]


def read_default_corpus() -> dict:
    """`builtin:debian-de`: the corpus `sensorium data debian-de` built into the cache (training pairs only)."""
    return read_debian_corpus(default_debian_corpus_dir())


def build(request: Any) -> Path:
    """`sensorium data debian-de [--mirror URL] [--out DIR] [--force]`."""
    return build_debian_corpus(request.out or default_debian_corpus_dir(), mirror=request.mirror or DEFAULT_MIRROR,
                               overwrite=request.force)
