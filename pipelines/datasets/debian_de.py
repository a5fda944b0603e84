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
(the same layout: `dists/RELEASE/main/Contents-*.gz`, `binary-ARCH/Packages.xz`, the pool files).
"""
from __future__ import annotations

import gzip
import io
import json
import logging
import lzma
import re
import tarfile
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.datasets.catalogs import read_mo
from sensorium.pipelines.datasets.ui_de import MAX_CHARS, drop_reason
from sensorium.pipelines.translation.sources import ParallelItems, escape_tsv, read_pairs_table
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
CORPUS_FILE, CARD_NAME = "corpus.json", "CORPUS.md"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_RELEASE = "bookworm"
DEFAULT_MAX_DEB_BYTES = 20_000_000
_TAR_MODES = {"data.tar.xz": "r|xz", "data.tar.gz": "r|gz", "data.tar.bz2": "r|bz2", "data.tar": "r|"}


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


@dataclass
class _Read:
    name: str
    pairs: list[tuple[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    license: str = "unknown"
    error: str | None = None
    skipped_files: list[str] = field(default_factory=list)


# === Archive indices ===
def _fetch(url: str, timeout: float = 300) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"cannot download {url} ({getattr(exc, 'reason', None) or exc})") from None


def catalogue_index(contents: bytes, language: str) -> dict[str, list[str]]:
    """package -> catalogue paths, from a `Contents-ARCH.gz` index (`path   section/pkg,section/pkg`)."""
    pattern = re.compile(rf"^(\S*/locale/{re.escape(language)}(?:_{re.escape(language.upper())})?/LC_MESSAGES/"
                         r"[^/\s]+\.mo)\s+(\S+)$")
    out: dict[str, list[str]] = {}
    try:
        text = gzip.decompress(contents).decode("utf-8", errors="replace")
    except (OSError, EOFError) as exc:
        raise DataError(f"unreadable Contents index ({exc})") from None
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            for qualified in m.group(2).split(","):
                out.setdefault(qualified.rsplit("/", 1)[-1], []).append(m.group(1))
    return out


def package_index(packages_xz: bytes) -> dict[str, dict[str, str]]:
    """package -> its Version, Filename and Size fields, from a `Packages.xz` index."""
    try:
        text = lzma.decompress(packages_xz).decode("utf-8", errors="replace")
    except lzma.LZMAError as exc:
        raise DataError(f"unreadable Packages index ({exc})") from None
    out = {}
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Version|Filename|Size): (.*)$", block, re.M))
        if "Package" in fields and "Filename" in fields:
            out[fields["Package"]] = fields
    return out


def find_packages(mirror: str, release: str, language: str, *, arch: str = "amd64",
                  max_deb_bytes: int = DEFAULT_MAX_DEB_BYTES) -> tuple[list[DebPackage], list[str]]:
    """(packages to read, names left out as larger than `max_deb_bytes`), sorted by name."""
    base = f"{mirror.rstrip('/')}/dists/{release}/main"
    found: dict[str, list[str]] = {}
    for name in ("Contents-all.gz", f"Contents-{arch}.gz"):
        for pkg, files in catalogue_index(_fetch(f"{base}/{name}"), language).items():
            found.setdefault(pkg, []).extend(files)
    index = package_index(_fetch(f"{base}/binary-{arch}/Packages.xz"))
    chosen, too_big = [], []
    for pkg in sorted(found):
        meta = index.get(pkg)
        if meta is None:
            continue
        size = int(meta.get("Size", "0") or 0)
        if size > max_deb_bytes:
            too_big.append(pkg)
            continue
        chosen.append(DebPackage(pkg, meta.get("Version", ""), meta["Filename"], size, sorted(set(found[pkg]))))
    return chosen, too_big


# === One package ===
def ar_members(data: bytes):
    """(name, bytes) of each member of an ar archive (a `.deb`)."""
    if data[:8] != b"!<arch>\n":
        raise DataError("not an ar archive")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        try:
            name, size = header[:16].decode("ascii").strip().rstrip("/"), int(header[48:58])
        except ValueError:
            raise DataError("corrupt ar member header") from None
        yield name, data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size & 1)


def _license(copyright_text: str) -> str:
    """The first `License:` of a machine-readable debian/copyright file (else 'see the package')."""
    m = re.search(r"^License:\s*(\S.*)$", copyright_text, re.M)
    return m.group(1).strip() if m else "see the package's copyright file"


def read_deb(data: bytes, package: DebPackage) -> _Read:
    """The catalogue pairs of one `.deb` (their order in the package), its licence and any errors."""
    out = _Read(package.name)
    wanted = set(package.catalogues)
    copyright_path = f"usr/share/doc/{package.name}/copyright"
    try:
        members = [(name, body) for name, body in ar_members(data) if name.startswith("data.tar")]
        if not members:
            raise DataError("no data.tar member (not a Debian package)")
        for name, body in members:
            mode = _TAR_MODES.get(name)
            if mode is None:
                out.error = f"unsupported member {name}"
                return out
            with tarfile.open(fileobj=io.BytesIO(body), mode=mode) as tar:
                for member in tar:
                    path = member.name.removeprefix("./")
                    if not member.isfile() or (path not in wanted and path != copyright_path):
                        continue
                    content = tar.extractfile(member).read()
                    if path == copyright_path:
                        out.license = _license(content.decode("utf-8", errors="replace"))
                        continue
                    try:
                        found = read_mo(path, content)
                    except DataError as exc:
                        out.skipped_files.append(f"{path} ({exc})")
                        continue
                    out.files.append(path)
                    out.pairs.extend((p.source, p.target) for p in found)
    except (DataError, tarfile.TarError, lzma.LZMAError, EOFError, OSError) as exc:
        out.error = str(exc) or type(exc).__name__
    return out


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
    packages, too_big = find_packages(mirror, release, language, max_deb_bytes=max_deb_bytes)
    if not packages:
        raise DataError(f"{mirror} {release}: no package ships {language} catalogues")
    log.info("reading the %s catalogues of %d Debian packages (%.0f MB) from %s", language, len(packages),
             sum(p.size for p in packages) / 1e6, mirror)

    def one(pkg: DebPackage) -> _Read:
        try:
            return read_deb(_fetch(f"{mirror.rstrip('/')}/{pkg.filename}"), pkg)
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
            "dropped": dict(sorted(dropped.items())), "left_out_as_too_large": too_big, "packages": per_package}
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
        f"- packages that could not be read: {len(failed)}" + (f" ({', '.join(failed[:20])})" if failed else ""), "",
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


__all__ = ["CORPUS_VERSION", "DEFAULT_MIRROR", "DEFAULT_RELEASE", "DebPackage", "ar_members", "build_debian_corpus",
           "catalogue_index", "corpus_card", "default_debian_corpus_dir", "find_packages", "package_index",
           "read_deb", "read_debian_corpus"]


def read_default_corpus() -> dict:
    """`builtin:debian-de`: the corpus `sensorium data debian-de` built into the cache (training pairs only)."""
    return read_debian_corpus(default_debian_corpus_dir())


def build(request: Any) -> Path:
    """`sensorium data debian-de [--mirror URL] [--out DIR] [--force]`."""
    return build_debian_corpus(request.out or default_debian_corpus_dir(), mirror=request.mirror or DEFAULT_MIRROR,
                               overwrite=request.force)
