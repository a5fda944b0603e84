"""`builtin:ui-de`: English -> German software UI strings from the gettext catalogues of PyPI packages.

Django, Sphinx, Wagtail, Plone, pretix, Indico, Weblate, Superset, Mayan EDMS and some fifty other
projects (`UI_PACKAGES`) ship their German translations as gettext catalogues inside their wheels.
`build_ui_corpus` downloads those pinned wheels once (`pip download`, at set-up time, never while
training; about 380 MB), or reads wheels already in a folder (`wheels=`, offline), extracts the German
catalogues (a `.po`, or the compiled `.mo` where a wheel ships no `.po` beside it), cleans the pairs
and writes:

    OUT/train.tsv, validation.tsv, test.tsv   source<TAB>target, one pair a line, a `source<TAB>target`
                                              header; tab, newline, CR and backslash escaped as
                                              \\t \\n \\r \\\\ (`sources.escape_tsv`)
    OUT/corpus.json                           version, language, seed, counts per split and package
    OUT/CORPUS.md                             the corpus card

Cleaning: pairs whose source has no letter, pairs longer than `MAX_CHARS` on either side, Zope
message ids with no English default (`label_title`), and exact duplicate pairs are dropped. Pairs
whose translation equals the source (names, "OK") are kept and counted. The split is seeded
80/10/10, grouped by normalised source text (`sources.grouped_split`), so a sentence of the test
split is never seen in training, even with another translation.
"""
from __future__ import annotations

import email.parser
import json
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.common.dataspec import SPLITS
from sensorium.pipelines.datasets.catalogs import (
    MAX_CATALOG_BYTES,
    catalog_size_error,
    language_from_path,
    normalise_language,
    read_mo,
    read_po,
)
from sensorium.pipelines.translation.sources import ParallelItems, escape_tsv, grouped_split, read_pairs_table
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

CORPUS_VERSION = 2  # 2: fifty more packages, .mo catalogues, only the language's own region
CORPUS_FILE = "corpus.json"
CARD_NAME = "CORPUS.md"
MAX_CHARS = 500
# Caps on what a wheel may make us decompress (each catalogue is capped by catalogs.MAX_CATALOG_BYTES):
MAX_WHEEL_CATALOG_BYTES = 256 * 2**20  # one wheel's catalogues of the language, decompressed, all together:
#                                        the largest real ones (Plone, JupyterLab's language pack) are a few MB
METADATA_SCAN_BYTES = 2**20  # only the start of a wheel's METADATA is read: the licence headers come first
UI_PACKAGES: tuple[tuple[str, str], ...] = (
    # version 1 of the corpus
    ("Django", "5.2.19"), ("sphinx", "9.0.4"), ("wagtail", "8.0.1"), ("django-allauth", "65.21.1"),
    ("django-cms", "5.1.3"), ("horizon", "27.0.0"), ("plone.app.locales", "7.0.4"), ("pretix", "2026.8.0"),
    # added in version 2, larger catalogues first
    ("indico", "3.3.14"), ("mayan-edms", "4.12.2"), ("Weblate", "2026.10.1"), ("shuup", "3.1.0"),
    ("apache-superset", "6.1.0"), ("misago", "0.39.6"), ("pretalx", "2026.2.1"), ("OctoPrint", "1.11.8"),
    ("django-oscar", "4.2.1"), ("geonode", "5.1.1"), ("Trac", "1.6"), ("nicotine-plus", "3.3.11"),
    ("ckan", "2.12.0"), ("jupyterlab-language-pack-de-DE", "4.5.post3"), ("deluge", "2.2.0"),
    ("calibreweb", "0.6.27"), ("moin", "2.0.0b5"), ("gaphor", "3.3.2"), ("postorius", "1.3.13"),
    ("django-helpdesk", "2.6.1"), ("manila-ui", "16.0.0"), ("wiki", "0.13.0"), ("tryton", "8.2.0"),
    ("trove-dashboard", "27.0.0"), ("octavia-dashboard", "18.0.0"), ("mailman", "3.3.10"),
    ("djangocms-frontend", "2.5.3"), ("invenio-app-rdm", "14.0.5"), ("zun-ui", "18.0.0"), ("hyperkitty", "1.3.12"),
    ("neutron-vpnaas-dashboard", "15.0.0"), ("django-filer", "3.6.0"), ("Flask-Security-Too", "5.9.2"),
    ("ironic-ui", "6.9.0"), ("heat-dashboard", "16.0.0"), ("magnum-ui", "19.0.0"), ("django-newsletter", "1.2.1"),
    ("django-debug-toolbar", "8.0.0"), ("evennia", "6.1.0"), ("djangorestframework", "3.18.3"),
    ("Flask-Admin", "2.2.1"), ("django-postman", "4.6"), ("django-two-factor-auth", "1.18.1"),
    ("django-mailman3", "1.3.15"), ("djangocms-text", "1.0.2"), ("WTForms", "3.3.2"), ("django-mptt", "0.20.0"),
    ("django-filter", "26.2"), ("django-import-export", "4.4.3"), ("django-rosetta", "0.10.3"),
)
# Projects held out of every training corpus (issue 26): `builtin:heldout-de` evaluates the translator on
# one of them, so the UI and Debian corpus builders leave out any package or catalogue of theirs by name,
# even if a later package list named one (`held_out_project`).
HELD_OUT_PROJECTS: tuple[str, ...] = ("ephios",)
_PACKAGE_PREFIXES = ("python3-", "python-", "node-")
# a symbolic message id (Zope/Plone `label_add_item`, `heading.users`): no spaces, an underscore
_MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9]+(?:[_.\-][A-Za-z0-9]+)*$")


def default_ui_corpus_dir(language: str = "de") -> Path:
    """Where `sensorium data ui-de` keeps the corpus: CACHE/datasets/ui-de-1 (see common.cache)."""
    return cache_dir("datasets", f"ui-{language}-{CORPUS_VERSION}")


@dataclass
class _PackageStats:
    name: str
    version: str
    wheel: str = ""
    license: str = ""
    files: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # unreadable catalogues, language variants
    raw_pairs: int = 0
    pairs: int = 0
    identical: int = 0
    dropped: Counter = field(default_factory=Counter)

    def as_json(self) -> dict:
        return {"version": self.version, "wheel": self.wheel, "license": self.license, "files": self.files,
                "skipped_files": self.skipped_files, "raw_pairs": self.raw_pairs, "pairs": self.pairs,
                "identical": self.identical, "dropped": dict(sorted(self.dropped.items()))}


# === Wheels ===
def _normalise_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def held_out_project(package: str, catalogues: Iterable[str] = ()) -> str | None:
    """The held-out project (`HELD_OUT_PROJECTS`) that a PyPI or Debian package belongs to, else None: its
    name is the project's, `python3-`/`python-`/`node-` + it, or it + `-SUFFIX` (`ephios-data`), or one
    of its `catalogues` lies in a folder of that name (`.../ephios/locale/de/LC_MESSAGES/django.mo`) or is
    that gettext domain (`.../LC_MESSAGES/ephios.mo`)."""
    name = _normalise_dist(package).replace("_", "-")
    for prefix in _PACKAGE_PREFIXES:
        name = name.removeprefix(prefix)
    parts = {part.lower() for path in catalogues for part in PurePosixPath(path).parts[:-1]}
    parts |= {PurePosixPath(path).stem.lower() for path in catalogues}
    for project in HELD_OUT_PROJECTS:
        if name == project or name.startswith(f"{project}-") or project in parts:
            return project
    return None


def _find_wheel(folder: Path, name: str, version: str) -> Path:
    want = (_normalise_dist(name), version)
    for path in sorted(folder.glob("*.whl")):
        parts = path.name[:-4].split("-")
        if path.is_file() and len(parts) >= 5 and (_normalise_dist(parts[0]), parts[1]) == want:
            return path
    raise DataError(f"{folder}: no wheel of {name}=={version} (expected a file like "
                    f"{_normalise_dist(name)}-{version}-py3-none-any.whl)")


def download_wheels(dest: Path, packages: Iterable[tuple[str, str]] = UI_PACKAGES) -> None:
    """`pip download` the pinned wheels (no dependencies) into `dest`; one-line DataError on failure.

    Only their data files are read, never their code, so the running Python need not meet their
    `Requires-Python`. A wheel that current pip refuses to select (non-standard metadata in an old
    release, e.g. shuup 3.1.0's dependency specifiers) is fetched from the index directly and checked
    against the SHA-256 the index publishes for it."""
    pending = list(packages)
    for _ in range(len(pending) + 1):
        refused = _pip_download(dest, pending)
        if refused is None:
            return
        name, version = refused
        fetch_from_index(name, version, dest)
        pending = [(n, v) for n, v in pending if (_normalise_dist(n), v) != (_normalise_dist(name), version)]
    raise DataError("pip download of the UI catalogues kept failing")  # pragma: no cover - bounded loop


_NO_MATCH_RE = re.compile(r"No matching distribution found for ([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+!\-]+)")


def _pip_download(dest: Path, packages: list[tuple[str, str]]) -> tuple[str, str] | None:
    """Run pip; None when every wheel came, (name, version) when pip refused one to select, else a DataError."""
    if not packages:
        return None
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--ignore-requires-python",
           "--dest", str(dest), *(f"{name}=={version}" for name, version in packages)]
    log.info("downloading %d UI catalogue wheels from the package index with pip", len(packages))
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise DataError(f"cannot run pip to download the UI catalogues ({exc.strerror or exc})") from None
    if done.returncode == 0:
        return None
    output = done.stderr or done.stdout or ""
    refused = _NO_MATCH_RE.search(output)  # e.g. a release whose metadata current pip will not select
    if refused and (refused.group(1), refused.group(2)) in set(packages):
        return refused.group(1), refused.group(2)
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    raise DataError(f"pip download of the UI catalogues failed: {lines[-1] if lines else done.returncode}")


INDEX_TIMEOUT_S = 60.0
MAX_INDEX_PAGE_BYTES = 16 * 2**20  # one project's simple-index page (JSON)
MAX_WHEEL_DOWNLOAD_BYTES = 512 * 2**20


def fetch_from_index(name: str, version: str, dest: Path) -> Path:
    """Download `name==version`'s wheel from the package index's simple JSON API (PEP 691; PIP_INDEX_URL
    or PyPI) and check it against the index's SHA-256; one-line DataErrors."""
    import hashlib
    import json
    import os
    import urllib.error
    import urllib.parse
    import urllib.request

    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    page_url = f"{index}/{_normalise_dist(name).replace('_', '-')}/"
    try:
        request = urllib.request.Request(page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=INDEX_TIMEOUT_S) as page:
            files = json.loads(page.read(MAX_INDEX_PAGE_BYTES + 1)[:MAX_INDEX_PAGE_BYTES])["files"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read the package index page {page_url} ({str(exc)[:150]})") from None
    wanted = (_normalise_dist(name), version)
    for entry in files if isinstance(files, list) else []:
        filename = str(entry.get("filename", ""))
        parts = filename[:-4].split("-")
        if not filename.endswith(".whl") or len(parts) < 5 or (_normalise_dist(parts[0]), parts[1]) != wanted:
            continue
        digest = str((entry.get("hashes") or {}).get("sha256", ""))
        if len(digest) != 64:
            raise DataError(f"{page_url}: {filename} has no SHA-256 in the index; not downloading it")
        url = urllib.parse.urljoin(page_url, str(entry.get("url", "")))
        try:
            with urllib.request.urlopen(url, timeout=INDEX_TIMEOUT_S) as response:
                data = response.read(MAX_WHEEL_DOWNLOAD_BYTES + 1)
        except (urllib.error.URLError, OSError) as exc:
            raise DataError(f"cannot download {url} ({str(exc)[:150]})") from None
        if len(data) > MAX_WHEEL_DOWNLOAD_BYTES:
            raise DataError(f"{url}: over the limit of {MAX_WHEEL_DOWNLOAD_BYTES:,} bytes")
        if hashlib.sha256(data).hexdigest() != digest:
            raise DataError(f"{url}: SHA-256 differs from the index's; not using it")
        path = dest / filename
        path.write_bytes(data)
        log.info("fetched %s from the index (pip refuses its metadata), SHA-256 checked", filename)
        return path
    raise DataError(f"{page_url}: no wheel of {name}=={version}")


def _license(meta_text: str) -> str:
    """A short licence name from a wheel's METADATA: License-Expression, a short License, or classifiers."""
    msg = email.parser.Parser().parsestr(meta_text, headersonly=True)
    if msg.get("License-Expression"):
        return str(msg["License-Expression"]).strip()
    lic = str(msg.get("License") or "").strip()
    classifiers = [c.split("::")[-1].strip() for c in msg.get_all("Classifier") or [] if c.startswith("License ::")]
    if lic and "\n" not in lic and len(lic) <= 60:
        return lic
    if classifiers:
        return "; ".join(classifiers) + (" (with additional terms in its License field)" if lic else "")
    return lic.splitlines()[0].strip() if lic else "unknown"


def _wanted_catalog(member: str, language: str, members: frozenset[str] = frozenset()) -> tuple[bool, bool]:
    """(take it, is a skipped variant) for a zip member `.../LANG/LC_MESSAGES/NAME.po` (or `NAME.mo` when
    `members` holds no `NAME.po` beside it). LANG is `language` itself or its own region (`de`, `de_DE`);
    other regions and registers (`de_AT`, `de_CH`, pretix's informal `de_Informal`) are variants, left out:
    one spelling and one register for the whole corpus."""
    if member.endswith(".mo"):
        if member[:-3] + ".po" in members:
            return False, False
    elif not member.endswith(".po"):
        return False, False
    lang = language_from_path(PurePosixPath(member))
    if lang is None:
        return False, False
    found, want = normalise_language(lang), normalise_language(language)
    if found in (want, f"{want}_{want}"):
        return True, False
    base, sep, _ = found.partition("_")
    return False, bool(sep and base == want and "_" not in want)


# === Cleaning ===
def drop_reason(source: str, target: str) -> str | None:
    """Why a catalogue pair is left out of a corpus (no letters, too long, a symbolic message id), or None."""
    if not any(c.isalpha() for c in source):
        return "no_letters"
    if len(source) > MAX_CHARS or len(target) > MAX_CHARS:
        return "too_long"
    if "_" in source and _MESSAGE_ID_RE.match(source):
        return "message_id"
    return None


def _read_catalog(z: zipfile.ZipFile, member: str) -> bytes:
    """A catalogue in a wheel, decompressed incrementally; DataError when over MAX_CATALOG_BYTES (a zip bomb
    is refused on its declared size, before any decompression, and could not pass the cap + 1 bytes read)."""
    info = z.getinfo(member)
    if info.file_size <= MAX_CATALOG_BYTES:
        with z.open(info) as f:
            data = f.read(MAX_CATALOG_BYTES + 1)
        if len(data) <= MAX_CATALOG_BYTES:
            return data
    raise catalog_size_error(member)


def _wheel_license(z: zipfile.ZipFile, names: list[str]) -> str:
    """The licence from the start of the wheel's METADATA (METADATA_SCAN_BYTES), 'unknown' without one."""
    meta = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
    if meta is None:
        return "unknown"
    with z.open(meta) as f:
        return _license(f.read(METADATA_SCAN_BYTES).decode("utf-8", errors="replace"))


def _read_package(wheel: Path, stats: _PackageStats, language: str, seen: set[tuple[str, str]], *,
                  keep_held_out: bool = False) -> list[tuple[str, str]]:
    """The cleaned pairs of a wheel's `language` catalogues; a catalogue of a held-out project is skipped
    (recorded in `stats.skipped_files`) unless `keep_held_out` (the held-out set's own builder)."""
    pairs: list[tuple[str, str]] = []
    read_bytes = 0
    try:
        with zipfile.ZipFile(wheel) as z:
            names = sorted(z.namelist())
            stats.license = _wheel_license(z, names)
            members = frozenset(names)
            for member in names:
                take, variant = _wanted_catalog(member, language, members)
                if variant:
                    stats.skipped_files.append(f"{member} (language variant)")
                if not take:
                    continue
                held = None if keep_held_out else held_out_project("", [member])
                if held:
                    stats.skipped_files.append(f"{member} (held-out project {held})")
                    continue
                read_bytes += z.getinfo(member).file_size
                if read_bytes > MAX_WHEEL_CATALOG_BYTES:
                    raise DataError(f"{wheel}: its {language} catalogues add up to more than "
                                    f"{MAX_WHEEL_CATALOG_BYTES} bytes (MAX_WHEEL_CATALOG_BYTES); refusing it")
                try:
                    read = read_mo if member.endswith(".mo") else read_po
                    found = read(member, _read_catalog(z, member))
                except DataError as exc:
                    log.warning("%s: skipping %s", wheel.name, exc)
                    stats.skipped_files.append(f"{member} ({exc})")
                    continue
                stats.files.append(member)
                stats.raw_pairs += len(found)
                for p in found:
                    reason = drop_reason(p.source, p.target)
                    if reason is None and (p.source, p.target) in seen:
                        reason = "duplicate"
                    if reason:
                        stats.dropped[reason] += 1
                        continue
                    seen.add((p.source, p.target))
                    pairs.append((p.source, p.target))
                    stats.identical += p.source == p.target
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DataError(f"{wheel}: not a readable wheel ({exc})") from None
    stats.pairs = len(pairs)
    if not stats.files:
        log.warning("%s: no %s catalogues", wheel.name, language)
    return pairs


# === Build ===
def build_ui_corpus(out: Path | None = None, *, language: str = "de", wheels: Path | None = None,
                    packages: Iterable[tuple[str, str]] = UI_PACKAGES, seed: int = 0,
                    overwrite: bool = False) -> Path:
    """Build the English -> `language` UI corpus into `out` (default `default_ui_corpus_dir(language)`).

    Downloads the pinned wheels with pip unless `wheels` names a folder that holds them. An existing
    corpus is returned as it is unless `overwrite`. The folder appears whole or not at all.
    """
    out = Path(out) if out is not None else default_ui_corpus_dir(language)
    packages = tuple(packages)
    if (out / CORPUS_FILE).is_file() and not overwrite:
        old = _read_meta(out)
        log.info("the UI corpus is already built in %s (%s pairs): reusing it", out, old.get("pairs"))
        if old.get("language") != language or old.get("seed") != seed:
            log.warning("%s was built for language %s with seed %s; pass overwrite=True to rebuild it",
                        out, old.get("language"), old.get("seed"))
        return out
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not a UI corpus; pick another folder or pass overwrite=True")
    if wheels is not None:
        return _build_from(Path(wheels), out, language, packages, seed)
    with tempfile.TemporaryDirectory(prefix="sensorium-ui-wheels-") as tmp:
        download_wheels(Path(tmp), packages)
        return _build_from(Path(tmp), out, language, packages, seed)


def _build_from(folder: Path, out: Path, language: str, packages: tuple[tuple[str, str], ...], seed: int) -> Path:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of wheels")
    held_out = [name for name, _ in packages if held_out_project(name)]
    if held_out:
        log.warning("leaving out %s: held out of every training corpus (builtin:heldout-de)", ", ".join(held_out))
        packages = tuple((n, v) for n, v in packages if n not in held_out)
    found = [(name, version, _find_wheel(folder, name, version)) for name, version in packages]
    seen: set[tuple[str, str]] = set()
    sources: list[str] = []
    targets: list[str] = []
    stats: list[_PackageStats] = []
    for name, version, wheel in found:
        st = _PackageStats(name, version, wheel.name)
        for s, t in _read_package(wheel, st, language, seen):
            sources.append(s)
            targets.append(t)
        stats.append(st)
        log.info("%s %s: %d files, %d pairs kept of %d", name, version, len(st.files), st.pairs, st.raw_pairs)
    if not sources:
        raise DataError(f"no {language} translations in the wheels in {folder}")
    parts = grouped_split(sources, seed)
    meta = {
        "name": f"ui-{language}", "version": CORPUS_VERSION, "source_language": "en", "language": language,
        "seed": seed, "max_chars": MAX_CHARS, "pairs": len(sources),
        "splits": {s: int(len(parts[s])) for s in SPLITS},
        "identical": {s: sum(sources[i] == targets[i] for i in parts[s]) for s in SPLITS},
        "dropped": dict(sorted(sum((st.dropped for st in stats), Counter()).items())),
        "held_out": {"projects": list(HELD_OUT_PROJECTS), "left_out": held_out},
        "packages": {st.name: st.as_json() for st in stats},
    }
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for split in SPLITS:
            lines = ["source\ttarget"] + [f"{escape_tsv(sources[i])}\t{escape_tsv(targets[i])}" for i in parts[split]]
            (tmp / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (tmp / CORPUS_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(corpus_card(meta), encoding="utf-8")
    log.info("built the UI corpus in %s: %s", out, ", ".join(f"{s} {n}" for s, n in meta["splits"].items()))
    return out


# === Read ===
def _read_meta(folder: Path) -> dict:
    try:
        return json.loads((folder / CORPUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / CORPUS_FILE}: unreadable corpus description ({exc})") from None


def read_ui_corpus(folder: Path) -> dict[str, ParallelItems]:
    """The train/validation/test pairs of a corpus built by `build_ui_corpus` (ids `ui-de/test:5`)."""
    folder = Path(folder)
    if not (folder / CORPUS_FILE).is_file():
        raise DataError(f"builtin:ui-de is not built yet in {folder}; build it once with `sensorium data ui-de` "
                        "(downloads the catalogues from PyPI)")
    meta = _read_meta(folder)
    name = meta.get("name", "ui-de")
    out = {}
    for split in SPLITS:
        path = folder / f"{split}.tsv"
        if not path.is_file():
            raise DataError(f"{folder}: the corpus is incomplete ({path.name} is missing); rebuild it")
        out[split] = read_pairs_table(path, id_prefix=f"{name}/{split}")
    return out


# === Card ===
def held_out_card_lines(meta: dict) -> list[str]:
    """The card's line naming the projects held out of training (shared with the Debian corpus card)."""
    held = meta.get("held_out") or {}
    if not held.get("projects"):
        return []
    left = ", ".join(held.get("left_out") or []) or "none in this build"
    return [f"- held out: {', '.join(held['projects'])}, the frozen evaluation set `builtin:heldout-de`; every "
            f"package or catalogue of these projects is left out by name (left out here: {left})"]


def corpus_card(meta: dict) -> str:
    """CORPUS.md for a corpus description (`corpus.json`)."""
    lang = meta["language"]
    splits, ident = meta["splits"], meta["identical"]
    total = meta["pairs"]
    lines = [
        f"# ui-{lang} corpus card (version {meta['version']})", "",
        f"English -> {lang} pairs of software user-interface strings: the gettext catalogues (.po, or .mo where "
        "no .po is shipped) that "
        "the PyPI packages below ship in their wheels, as translated by each project's volunteer translators. "
        f"Built by `sensorium.pipelines.datasets.ui_de.build_ui_corpus`; read with the data spec "
        f"`builtin:ui-{lang}[@train|@validation|@test]`.", "",
        "## Sources", "",
        "| package | version | licence | catalogues | pairs found | pairs kept | identical |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, p in meta["packages"].items():
        lines.append(f"| {name} | {p['version']} | {p['license']} | {len(p['files'])} | {p['raw_pairs']} | "
                     f"{p['pairs']} | {p['identical']} |")
    dropped_text = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in meta.get("dropped", {}).items())
    lines += [
        "", "Only translated, non-fuzzy, current entries are read; a plural entry gives its singular and "
        "plural forms (msgstr[0], msgstr[1]). For Plone's symbolic message ids the English text of the "
        f"`#. Default:` comment is the source. Catalogues of the language itself (`{lang}`) and of its own "
        f"region (`{lang}_{lang.upper()}`) are read; other regions and registers (for German `de_AT`, `de_CH` "
        "and pretix's informal `de_Informal`) are left out, so the corpus keeps one spelling and one register.", "",
        "## Cleaning", "",
        f"- dropped: {dropped_text or 'nothing'} "
        f"(no letter in the source; longer than {meta['max_chars']} characters on either side; a symbolic "
        "message id without English text; an exact duplicate of an earlier pair, packages in the order above)",
        f"- kept: {total} pairs, {sum(ident.values())} of them with the target equal to the source (names, "
        "\"OK\", format strings); they are kept because a translator must learn to copy them",
        *held_out_card_lines(meta), "",
        "## Splits", "",
        f"Seeded ({meta['seed']}) 80/10/10, grouped by normalised source (whitespace collapsed, case-folded): "
        "all the translations of one English message are in one split, so no test source is seen in training.",
        "", "| split | pairs | identical |", "|---|---|---|",
    ]
    for s in SPLITS:
        lines.append(f"| {s} | {splits[s]} | {ident[s]} |")
    lines += [
        "", "Files: `train.tsv`, `validation.tsv`, `test.tsv` (a `source<TAB>target` header, one pair a "
        "line; tab, newline, carriage return and backslash inside a message written as `\\t`, `\\n`, `\\r`, "
        "`\\\\`) and `corpus.json` (these counts, the catalogue files read per package).", "",
        "## Caveats", "",
        "- UI strings are short (buttons, labels, menu items, error messages): a model trained on them "
        "translates interface text, not running prose, news or conversation.",
        "- The vocabulary is narrow and technical (web frameworks, content management, ticketing, cloud "
        "dashboards); the register is mostly the formal German \"Sie\".",
        "- Messages hold placeholders (`%(name)s`, `{0}`, `${count}`, `%d`) and HTML tags that a "
        "translation must copy unchanged, and some have several valid translations across projects.",
        "- Translations are volunteer work of varying review; a few are stale or inconsistent.",
        "- Licences: each package's translations are under that package's licence (listed above; some are "
        "copyleft, e.g. GPL or AGPL); check them before redistributing the corpus or a model trained on it.",
        "- Building needs PyPI once (`pip download` of the pinned wheels); the same wheels and seed give the "
        "same files.",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["CORPUS_VERSION", "HELD_OUT_PROJECTS", "MAX_CHARS", "UI_PACKAGES", "build_ui_corpus", "corpus_card",
           "default_ui_corpus_dir", "download_wheels", "drop_reason", "held_out_project", "read_ui_corpus"]


def read_default_corpus() -> dict:
    """`builtin:ui-de`: the corpus `sensorium data ui-de` built into the cache, by split."""
    return read_ui_corpus(default_ui_corpus_dir())


def build(request: Any) -> Path:
    """`sensorium data ui-de [--from WHEELS] [--out DIR] [--seed N] [--force]`."""
    return build_ui_corpus(request.out or default_ui_corpus_dir(), seed=request.seed, wheels=request.source,
                           overwrite=request.force)
