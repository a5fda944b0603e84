"""Sentiment: `--init-from` (continue training a model on a new domain's few labelled texts), the
calibrated binary head recorded at the end of training (or afterwards, in an older run), and
`sentiment --labels binary|three`."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from sensorium.apps import main as sensorium_app
from sensorium.apps import sentiment as sentiment_app
from sensorium.pipelines.sentiment.calibration import (
    fit_balanced_logistic,
    fit_binary_calibration,
    fit_lexicon_fusion,
)
from sensorium.runtime.lexicon_fusion import Expert, lexicon_fusion, lexicon_logits
from sensorium.runtime.sentiment import binary_calibration, binary_probability

LABELS = ["negative", "neutral", "positive"]
# The base domain (travel); positive texts are rare, as in the tweets.
TRAVEL = {"positive": ["great", "lovely", "excellent", "wonderful"],
          "negative": ["awful", "terrible", "horrible", "worst"],
          "neutral": ["scheduled", "listed", "boarding", "posted"]}
SUBJECTS = ["the flight", "our crew", "the lounge", "my seat"]
# The new domain (medicine) shares no sentiment words with the base one.
MEDICINE = {"positive": ["helped", "cured", "relieved", "soothed"],
            "negative": ["dizzy", "nauseous", "sleepless", "itchy"]}
DRUGS = ["this tablet", "the syrup", "that cream", "my injection"]
TINY = ["--vocab-size", "400", "--embed-dim", "32", "--num-heads", "2", "--ff-dim", "64", "--layers", "1",
        "--max-length", "24", "--batch-size", "16", "--seed", "3", "-q"]


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _rows(words: dict[str, list[str]], subjects: list[str], counts: dict[str, int], seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = [(f"{rng.choice(subjects)} {rng.choice(words[label])}, so {rng.choice(words[label])}", label)
            for label, n in counts.items() for _ in range(n)]
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A three-way model trained on the travel texts only."""
    tmp = tmp_path_factory.mktemp("warm")
    data = _write(tmp / "travel.csv", _rows(TRAVEL, SUBJECTS, {"negative": 400, "neutral": 250, "positive": 150}, 0))
    out = tmp / "base"
    assert sensorium_app.main(["train", "sentiment", "--data", str(data), "--out", str(out), "--epochs", "5",
                               "--learning-rate", "0.003", "--class-weights", "yes", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def medicine(tmp_path_factory) -> tuple[Path, Path]:
    """(200 labelled medicine texts to adapt on, 200 others to test on), positive and negative only."""
    tmp = tmp_path_factory.mktemp("medicine")
    counts = {"negative": 100, "positive": 100}
    return (_write(tmp / "adapt.csv", _rows(MEDICINE, DRUGS, counts, 1)),
            _write(tmp / "test.csv", _rows(MEDICINE, DRUGS, counts, 2)))


def _binary_accuracy(model: Path, data: Path, fusion: str = "none") -> float:
    """Accuracy of the binary head on `data` (the model's own head unless `fusion` says otherwise)."""
    from sensorium.pipelines.sentiment.predict import load

    with open(data, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    clf = load(model).configure(label_set="binary", fusion=fusion)
    records = clf([r["text"] for r in rows])
    return float(np.mean([r["label"] == row["label"] for r, row in zip(records, rows)]))


def test_training_records_a_calibrated_binary_head(base):
    manifest = json.loads((base / "sensorium.json").read_text())
    cal = manifest["summary"]["binary_calibration"]
    assert cal["priors"] == "balanced" and cal["negative"] > cal["positive"] > 0 and cal["scale"] > 0
    from sensorium.pipelines.common.artifacts import load_task_model

    _, meta = load_task_model(base / "model.keras", "sentiment")
    assert binary_calibration(meta["info"]) == (cal["scale"], cal["bias"])
    # ... and VADER's calibrated opinion beside it, fitted on the training and validation texts (VADER
    # learns from neither): about nine times the head's validation texts
    fusion = manifest["summary"]["lexicon_fusion"]
    assert fusion["lexicon"] == "vader-3.3.2" and fusion["priors"] == "balanced" and fusion["scale"] > 0
    assert fusion["negative"] > 5 * cal["negative"] and fusion["positive"] > 5 * cal["positive"]
    assert fusion["fitted_on"] == "training and validation texts"
    assert lexicon_fusion(meta["info"]) == Expert(fusion["scale"], fusion["bias"])  # from scratch: VADER alone
    # the card says how the model reads long texts and what its binary head adds
    card = (base / "model_card.md").read_text()
    pieces = manifest["summary"]["long_text_pieces"]
    assert pieces == meta["info"]["long_text_pieces"] and f"up to {pieces} subword pieces" in card
    assert f"{cal['negative'] + cal['positive']} positive and negative validation texts" in card
    assert f"{fusion['negative'] + fusion['positive']} positive and negative training and validation" in card
    assert "warm start" not in card


def test_the_lexicon_expert_knows_words_the_model_never_saw(base, medicine):
    _, test = medicine
    alone, fused = _binary_accuracy(base, test), _binary_accuracy(base, test, fusion="lexicon")
    # VADER rates 4 of the 8 medicine words (relieved, soothed, dizzy, itchy); the travel model knows none
    assert fused >= alone + 0.05 and fused >= 0.7, (alone, fused)  # measured 0.68 -> 0.745


def test_recording_the_binary_head_in_an_older_run(base, tmp_path, capsys):
    import shutil

    from sensorium.pipelines.common.artifacts import load_task_model
    from sensorium.pipelines.common.run_info import rewrite_run_info
    from sensorium.pipelines.sentiment import calibration

    run = shutil.copytree(base, tmp_path / "run", ignore=shutil.ignore_patterns("exports"))
    trained = json.loads((base / "sensorium.json").read_text())["summary"]["binary_calibration"]
    fused = json.loads((base / "sensorium.json").read_text())["summary"]["lexicon_fusion"]
    rewrite_run_info(run, "sentiment", "test", lambda info, _: {k: v for k, v in info.items()
                                                               if k not in ("binary_calibration", "lexicon_fusion")})
    info = load_task_model(run / "model.keras", "sentiment")[1]["info"]
    assert binary_calibration(info) == (1.0, 0.0) and lexicon_fusion(info) is None
    assert calibration.main(["--model", str(run), "--fusion", "none"]) == 0
    info = load_task_model(run / "model.keras", "sentiment")[1]["info"]
    scale, bias = binary_calibration(info)
    # the same fit as at the end of training (the validation texts are short: read whole, as there)
    assert scale == pytest.approx(trained["scale"], abs=1e-3) and bias == pytest.approx(trained["bias"], abs=1e-3)
    assert lexicon_fusion(info) is None  # --fusion none: the head alone
    assert calibration.main(["--model", str(run)]) == 0
    scale, bias = lexicon_fusion(load_task_model(run / "model.keras", "sentiment")[1]["info"])[:2]
    assert scale == pytest.approx(fused["scale"], abs=1e-6) and bias == pytest.approx(fused["bias"], abs=1e-6)
    assert calibration.main(["--model", str(run), "--expert", "vader+opinion"]) == 0  # re-recorded with more
    expert = lexicon_fusion(load_task_model(run / "model.keras", "sentiment")[1]["info"])
    assert expert.lexicon == "vader-3.3.2+opinion" and expert.opinion_scale > 0 and expert.scale != scale
    capsys.readouterr()
    assert calibration.main(["--model", str(run / "model.keras")]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "needs a run directory" in err[0], err


def test_init_from_adapts_the_model_to_a_new_domain_with_200_texts(base, medicine, tmp_path):
    adapt, test = medicine
    before = _binary_accuracy(base, test)
    out = tmp_path / "adapted"
    assert sensorium_app.main(["train", "sentiment", "--init-from", str(base), "--data", str(adapt), "--out", str(out),
                               "--epochs", "6", "--learning-rate", "0.002", "--batch-size", "16", "-q"]) == 0
    after = _binary_accuracy(out, test)
    assert before < 0.8 and after >= 0.95, (before, after)  # the new words were unknown; now they are learnt
    # The run took over the base model's tokenizer, labels and settings, and says where it started.
    assert (out / "tokenizer.model").read_bytes() == (base / "tokenizer.model").read_bytes()
    assert (out / "labels.txt").read_text().split() == LABELS
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["embed_dim"] == 32 and config["train"]["init_from"] == str(base)
    assert json.loads((out / "sensorium.json").read_text())["summary"]["init_from"] == str(base)
    # It still knows the travel words it was not shown again.
    from sensorium.pipelines.sentiment.predict import load

    record = load(out)("the flight lovely, so wonderful")
    assert record["label"] == "positive"


def test_init_from_fits_the_head_towards_no_correction_and_the_expert_towards_the_sources(base, tmp_path):
    """A warm start with enough validation texts fits its binary head pulled towards (1, 0) (what the
    recorder of an older run fits too) and its lexicon expert, on the training and validation texts,
    pulled towards the source's."""
    import shutil

    from sensorium.pipelines.common.artifacts import inspect_artifact, load_task_model
    from sensorium.pipelines.common.run_info import rewrite_run_info
    from sensorium.pipelines.sentiment import calibration

    data = _write(tmp_path / "adapt.csv", _rows(MEDICINE, DRUGS, {"negative": 200, "positive": 200}, 5))
    out = tmp_path / "adapted"
    assert sensorium_app.main(["train", "sentiment", "--init-from", str(base), "--data", str(data), "--out", str(out),
                               "--epochs", "1", "--batch-size", "16", "-q"]) == 0
    summary = json.loads((out / "sensorium.json").read_text())["summary"]
    cal, fusion = summary["binary_calibration"], summary["lexicon_fusion"]
    assert min(cal["negative"], cal["positive"]) >= 10 and "fitted" not in cal and "kept_from" not in fusion
    run = shutil.copytree(out, tmp_path / "again", ignore=shutil.ignore_patterns("exports"))
    rewrite_run_info(run, "sentiment", "test", lambda info, _: {k: v for k, v in info.items()
                                                               if k != "binary_calibration"})
    assert calibration.main(["--model", str(run), "--fusion", "none"]) == 0
    again = binary_calibration(load_task_model(run / "model.keras", "sentiment")[1]["info"])
    assert again == pytest.approx((cal["scale"], cal["bias"]), abs=1e-3)  # both pulled towards (1, 0)
    source = lexicon_fusion(load_task_model(base / "model.keras", "sentiment")[1]["info"])
    train, val, seed = calibration._splits(out, inspect_artifact(out), LABELS)
    texts, labels = calibration.expert_items([train, val], seed=seed)  # the expert: training and validation texts
    assert len(texts) == train.count + val.count and fusion["negative"] + fusion["positive"] == len(texts)
    # a warm start's expert hears the opinion lexicon and the domain's words too (--expert auto)
    assert fusion["lexicon"] == "vader-3.3.2+opinion+words" and fusion["opinion_scale"] > 0 and fusion["words"]
    assert lexicon_fusion(load_task_model(out / "model.keras", "sentiment")[1]["info"]) == Expert(
        fusion["scale"], fusion["bias"], fusion["opinion_scale"], fusion["words"])
    both = {"opinions": "vader+opinion+words", "seed": seed}
    towards_source = fit_lexicon_fusion(texts, labels, val.labels, prior=source, **both)
    towards_one = fit_lexicon_fusion(texts, labels, val.labels, **both)
    only_validation = fit_lexicon_fusion(val.items.texts, val.items.labels, val.labels, prior=source, **both)
    assert (fusion["scale"], fusion["bias"], fusion["opinion_scale"]) == pytest.approx(
        (towards_source["scale"], towards_source["bias"], towards_source["opinion_scale"]))
    assert fusion["words"] == towards_source["words"]
    assert (fusion["scale"], fusion["bias"]) != pytest.approx((only_validation["scale"], only_validation["bias"]))
    moved = abs(towards_one["scale"] - towards_source["scale"]) + abs(towards_one["bias"] - towards_source["bias"])
    assert moved > 0.01  # the two pulls give different experts: the assertion above can tell them apart


def test_init_from_a_set_too_small_to_calibrate_keeps_the_sources_lexicon_expert(base, tmp_path):
    """A user's few, lopsided texts leave too few of one class in validation to fit the binary head: the
    adapted run records what the fits pulled towards their priors give with no texts (the head uncorrected,
    the source's lexicon expert) instead of dropping the expert."""
    from sensorium.pipelines.common.artifacts import load_task_model

    few = _write(tmp_path / "few.csv", _rows(MEDICINE, DRUGS, {"negative": 8, "positive": 52}, 4))
    out = tmp_path / "adapted"
    assert sensorium_app.main(["train", "sentiment", "--init-from", str(base), "--data", str(few), "--out", str(out),
                               "--epochs", "1", "--batch-size", "16", "-q"]) == 0
    source = json.loads((base / "sensorium.json").read_text())["summary"]
    summary = json.loads((out / "sensorium.json").read_text())["summary"]
    assert summary["validation"]["count"] < 20  # at most a handful of negatives: no fit
    cal, fusion = summary["binary_calibration"], summary["lexicon_fusion"]
    assert (cal["scale"], cal["bias"]) == (1.0, 0.0) and cal["fitted"].startswith("no: too few")
    assert fusion["kept_from"] == str(base) and fusion["fitted"].startswith("no: too few")
    assert f"kept from {base} (no: too few" in (out / "model_card.md").read_text()
    info = load_task_model(out / "model.keras", "sentiment")[1]["info"]
    assert binary_calibration(info) == (1.0, 0.0)
    assert lexicon_fusion(info) == Expert(source["lexicon_fusion"]["scale"], source["lexicon_fusion"]["bias"])


def test_init_from_a_lopsided_set_fits_the_lexicon_expert_on_all_its_texts(base, tmp_path):
    """Too few negatives in validation to fit the head, enough among the training and validation texts
    together (as in a draw of 200 drug reviews, 71% positive): the head stays uncorrected and the expert is
    fitted on all those texts, pulled towards the source's, instead of kept as the source's."""
    from sensorium.pipelines.common.artifacts import load_task_model

    lopsided = _write(tmp_path / "lopsided.csv", _rows(MEDICINE, DRUGS, {"negative": 30, "positive": 110}, 6))
    out = tmp_path / "adapted"
    assert sensorium_app.main(["train", "sentiment", "--init-from", str(base), "--data", str(lopsided),
                               "--out", str(out), "--epochs", "1", "--batch-size", "16", "-q"]) == 0
    source = json.loads((base / "sensorium.json").read_text())["summary"]["lexicon_fusion"]
    summary = json.loads((out / "sensorium.json").read_text())["summary"]
    cal, fusion = summary["binary_calibration"], summary["lexicon_fusion"]
    assert (cal["scale"], cal["bias"]) == (1.0, 0.0) and cal["fitted"].startswith("no: too few")
    assert "kept_from" not in fusion and "fitted" not in fusion
    assert fusion["negative"] + fusion["positive"] == summary["train"]["count"] + summary["validation"]["count"]
    assert fusion["negative"] >= 10 and (fusion["scale"], fusion["bias"]) != (source["scale"], source["bias"])
    info = load_task_model(out / "model.keras", "sentiment")[1]["info"]
    assert lexicon_fusion(info) == Expert(fusion["scale"], fusion["bias"], fusion.get("opinion_scale", 0.0),
                                          fusion.get("words"))
    card = (out / "model_card.md").read_text()
    assert f"from {base} (its weights" in card and "uncorrected (no: too few" in card
    assert f"{fusion['negative'] + fusion['positive']} positive and negative training and validation" in card


def test_init_from_refusals_are_one_line(base, medicine, tmp_path, capsys):
    adapt, _ = medicine
    odd = _write(tmp_path / "odd.csv", [("the syrup helped", "positive"), ("the syrup, meh", "mixed")] * 10)
    cases = [(["--init-from", str(tmp_path / "missing")], "missing"),
             (["--init-from", "digits"], "digits"),
             (["--init-from", str(base), "--data", str(odd)], "mixed")]
    for extra, needle in cases:
        data = [] if "--data" in extra else ["--data", str(adapt)]
        rc = sensorium_app.main(["train", "sentiment", *data, "--out", str(tmp_path / f"r{len(needle)}"),
                                 "--epochs", "1", "-q", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc != 0 and len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err


def test_sentiment_labels_binary_and_three(base, capsys):
    text = "our crew excellent, so wonderful"
    assert sentiment_app.main([text, "--model", str(base), "--labels", "binary", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label_set"] == "binary" and set(record["scores"]) == {"negative", "positive"}
    assert record["label"] == "positive" and abs(sum(record["scores"].values()) - 1) < 1e-5
    assert record["fusion"] == "lexicon"  # the run records the lexicon expert
    assert sentiment_app.main([text, "--model", str(base), "--labels", "binary", "--fusion", "none", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["fusion"] == "none" and alone["label"] == "positive"
    assert alone["scores"]["positive"] != record["scores"]["positive"]
    assert sentiment_app.main([text, "--model", str(base), "--labels", "three", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label_set"] == "three" and list(record["scores"]) == LABELS and "fusion" not in record
    with pytest.raises(SystemExit) as exc:
        sentiment_app.main([text, "--model", str(base), "--fusion", "vader"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_a_label_set_the_model_lacks_is_one_line(tmp_path, capsys):
    from sensorium.runtime.sentiment import TextClassifier

    clf = TextClassifier(lambda texts: np.full((len(texts), 2), 0.5, np.float32), ["neg", "pos"], "m", {})
    with pytest.raises(Exception, match="cannot give"):
        clf.configure(label_set="binary")
    with pytest.raises(Exception, match="binary or three"):
        clf.configure(label_set="five")
    two = TextClassifier(lambda texts: np.tile([[0.2, 0.8]], (len(texts), 1)).astype(np.float32),
                         ["negative", "positive"], "m", {})
    with pytest.raises(Exception, match="cannot give"):
        two.configure(label_set="three")
    assert two.configure(label_set="binary")("fine")["label"] == "positive"


def test_calibration_removes_a_prior_shift_and_needs_both_classes():
    rng = np.random.default_rng(0)
    y = np.array([0] * 700 + [2] * 300)  # negative-heavy, like the tweets
    margin = np.where(y == 2, 1.0, -1.0) + rng.normal(0, 1.0, len(y)) - 1.5  # a model biased to negative
    p_pos = 1 / (1 + np.exp(-margin))
    probs = np.stack([(1 - p_pos) * 0.9, np.full(len(y), 0.1), p_pos * 0.9], axis=1)
    cal = fit_binary_calibration(probs, y, LABELS)
    assert cal["negative"] == 700 and cal["positive"] == 300
    # Class means -2.5 and -0.5, unit spread: the balanced boundary is at margin -1.5 (scale 2, bias 3).
    assert abs(cal["bias"] / cal["scale"] - 1.5) < 0.2 and 1.5 < cal["scale"] < 2.5
    p = binary_probability(probs, LABELS, cal["scale"], cal["bias"])
    raw = binary_probability(probs, LABELS)
    balanced = lambda q: np.mean([np.mean(q[y == 2] >= 0.5), np.mean(q[y == 0] < 0.5)])  # noqa: E731
    assert balanced(p) > balanced(raw) + 0.1
    assert fit_binary_calibration(probs[:705], y[:705], LABELS) is None  # 5 positives: too few
    assert fit_binary_calibration(probs, y, ["a", "b", "c"]) is None
    assert binary_calibration({"binary_calibration": {"scale": "x"}}) == (1.0, 0.0)
    # 20 separable texts (a warm start's validation split): unpulled, the fit runs off to a steep step;
    # the pull keeps it near its prior (a warm start's lexicon expert: the source model's)
    x, y20 = np.linspace(-1, 1, 20), (np.linspace(-1, 1, 20) > 0).astype(float)
    free = fit_balanced_logistic(x, y20, prior_texts=1e-6)
    pulled = fit_balanced_logistic(x, y20, prior=(0.8, 0.3))
    assert free[0] > 20 and 0.8 < pulled[0] < 5 and abs(pulled[1]) < 1, (free, pulled)
    # Wide margins (a model trained with heavy dropout scores +-12): plain Newton steps cycled between
    # scales near -100 and +900 on these; the line search reaches the minimum.
    rng = np.random.default_rng(1)
    x = rng.normal(-3.7, 5.8, 2000)
    y2 = (rng.random(2000) < 1 / (1 + np.exp(-(0.45 * x + 0.8)))).astype(float)
    scale, bias = fit_balanced_logistic(x, y2)
    assert 0.35 < scale < 0.55 and 0.8 < bias < 1.6, (scale, bias)
    texts = ["wonderful", "awful"] * 20
    fusion = fit_lexicon_fusion(texts, np.array([2, 0] * 20), LABELS)
    assert fusion["lexicon"] == "vader-3.3.2" and fusion["scale"] > 0 and fusion["positive"] == 20
    assert fit_lexicon_fusion(texts[:12], np.array([2, 0] * 6), LABELS) is None  # 6 of each: too few
    assert binary_calibration({"model": {"binary_calibration": {"scale": 2, "bias": -1}}}) == (2.0, -1.0)


def test_the_expert_learns_a_domains_words_and_hears_the_opinion_lexicon():
    """With enough texts of each class the expert learns the words that carry a domain's opinion where
    neither lexicon knows them (out of fold), and the opinion lexicon where VADER does not rate a word."""
    rng = np.random.default_rng(0)
    plain = ["the pharmacy", "my doctor said", "after two weeks", "the refill came", "as prescribed"]

    def text(label: int) -> str:
        # the domain's cue: "refill" in positives, "generic" in negatives, 80% of the time; "flawless" is in
        # the opinion lexicon (VADER does not rate it), "itchy" in both as negative
        cue = ("refill" if label else "generic") if rng.random() < 0.8 else ("generic" if label else "refill")
        extra = "flawless" if label and rng.random() < 0.5 else ("itchy" if not label and rng.random() < 0.5 else "")
        return f"{rng.choice(plain)} {cue} {extra}".strip()

    y = rng.integers(0, 2, 200)
    texts = [text(int(v)) for v in y]
    labels = np.where(y == 1, 2, 0)
    record = fit_lexicon_fusion(texts, labels, LABELS, opinions="vader+opinion+words")
    assert record["lexicon"] == "vader-3.3.2+opinion+words" and record["opinion_scale"] > 0
    assert record["words"]["refill"] > 0.5 > -0.5 > record["words"]["generic"]
    expert = lexicon_fusion({"lexicon_fusion": record})
    held = [text(1) for _ in range(50)] + [text(0) for _ in range(50)]
    right = np.mean((lexicon_logits(held, *expert) >= 0) == np.r_[np.ones(50), np.zeros(50)].astype(bool))
    vader = fit_lexicon_fusion(texts, labels, LABELS)
    alone = np.mean((lexicon_logits(held, vader["scale"], vader["bias"]) >= 0) == np.r_[np.ones(50), np.zeros(50)])
    assert right > 0.8 and right > alone + 0.15, (right, alone)
    # a word longer than the runtime reads in a record is not learned (the record would be refused whole)
    long = "x" * 101
    record = fit_lexicon_fusion([f"{t} {long}" for t in texts], labels, LABELS, opinions="vader+opinion+words")
    assert long not in record["words"] and lexicon_fusion({"lexicon_fusion": record}) is not None
    # under WORDS_MIN_PER_CLASS texts of a class: no words are learned; the opinion lexicon stays
    few = fit_lexicon_fusion(texts[:30], labels[:30], LABELS, opinions="vader+opinion+words")
    assert few["lexicon"] == "vader-3.3.2+opinion" and "words" not in few
    with pytest.raises(ValueError, match="opinions must be one of"):
        fit_lexicon_fusion(texts, labels, LABELS, opinions="afinn")


def test_an_opinion_that_points_the_wrong_way_is_left_out():
    """A second score whose fitted weight is not positive is dropped and the rest refitted."""
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 400)
    y = (x + rng.normal(0, 0.5, 400) > 0).astype(float)
    assert len(fit_balanced_logistic(np.stack([x, x + rng.normal(0, 0.1, 400)], 1), y, prior=(1, 1, 0))) == 3
    assert fit_balanced_logistic(np.stack([x, -x + rng.normal(0, 0.1, 400)], 1), y, prior=(1, 0, 0)) is None
    with pytest.raises(ValueError, match="prior has 2 values for 2 scores"):
        fit_balanced_logistic(np.stack([x, x], 1), y)


def test_expert_items_joins_the_splits_and_draws_at_most_the_limit():
    """The lexicon expert's texts: every split's, in order, or a seeded draw of `limit` with each label
    kept beside its text."""
    from types import SimpleNamespace

    from sensorium.pipelines.sentiment.calibration import expert_items

    def split(texts: list[str]) -> SimpleNamespace:
        labels = np.array([2 if t.startswith("good") else 0 for t in texts])
        return SimpleNamespace(items=SimpleNamespace(texts=texts, labels=labels))

    train = split([f"good {i}" if i % 3 else f"bad {i}" for i in range(30)])
    val = split(["good 30", "bad 31"])
    texts, labels = expert_items([train, val], limit=100)
    assert texts == train.items.texts + val.items.texts and labels.tolist() == [2 if t.startswith("good") else 0
                                                                                for t in texts]
    drawn, drawn_labels = expert_items([train, val], limit=10, seed=4)
    assert len(drawn) == 10 and drawn == expert_items([train, val], limit=10, seed=4)[0]
    assert drawn != expert_items([train, val], limit=10, seed=5)[0]
    order = [int(t.split()[1]) for t in drawn]
    assert order == sorted(order) and drawn_labels.tolist() == [2 if t.startswith("good") else 0 for t in drawn]


def test_label_smoothing_trains_resumes_and_is_recorded(tmp_path, interrupt_training):
    """`--label-smoothing`: the run's config and card record it, a checkpoint compiled with the smoothed loss
    resumes, and the model still learns the travel texts."""
    counts = {"negative": 200, "neutral": 120, "positive": 80}
    data = _write(tmp_path / "travel.csv", _rows(TRAVEL, SUBJECTS, counts, 5))
    out = tmp_path / "smooth"
    interrupt_training(1)
    args = ["train", "sentiment", "--data", str(data), "--out", str(out), "--epochs", "3", "--learning-rate",
            "0.003", "--label-smoothing", "0.1", *TINY]
    assert sensorium_app.main(args) == 130
    interrupt_training(None)
    assert sensorium_app.main(["train", "sentiment", "--out", str(out), "--resume", "-q"]) == 0
    manifest = json.loads((out / "sensorium.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == 1
    assert json.loads((out / "config.json").read_text())["train"]["label_smoothing"] == 0.1
    assert "label smoothing 0.1" in (out / "model_card.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["metrics"]["accuracy"] >= 0.9
    assert sensorium_app.main([*args[:-len(TINY)], "--label-smoothing", "1.5", *TINY[:-1]]) == 2
