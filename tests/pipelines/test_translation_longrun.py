"""Long translation runs (issue 26) on a tiny translator and a few dozen pairs: validation chrF at set
intervals into the history files, the chrF stopping rule and the hour cap, a run killed mid-epoch that
resumes past a corrupt checkpoint (or refuses in one line when none is usable), warm start, and
checkpoint averaging."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sensorium.runtime.errors import ModelError, UsageError

NOUNS = {"file": "Datei", "page": "Seite", "user": "Benutzer", "group": "Gruppe", "image": "Bild",
         "folder": "Ordner", "entry": "Eintrag", "task": "Aufgabe"}
VERBS = {"Save": "speichern", "Delete": "löschen", "Edit": "bearbeiten", "Open": "öffnen", "Copy": "kopieren",
         "Move": "verschieben", "Print": "drucken", "Show": "anzeigen"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    rows = [(f"{v} {n}", f"{NOUNS[n]} {VERBS[v]}") for v in VERBS for n in NOUNS]  # 64 pairs
    path = tmp_path_factory.mktemp("pairs") / "pairs.tsv"
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    return path


def make_config(pairs: Path, **train):
    from sensorium.pipelines.translation.config import TranslationConfig

    cfg = TranslationConfig()
    cfg.data.spec = str(pairs)
    cfg.model.vocab_size, cfg.model.embed_dim, cfg.model.num_heads, cfg.model.ff_dim = 384, 16, 2, 32
    cfg.model.encoder_layers = cfg.model.decoder_layers = 1
    cfg.model.max_source_length = cfg.model.max_target_length = 16
    cfg.train.batch_size, cfg.train.epochs, cfg.train.early_stopping_patience = 8, 2, 0
    cfg.train.eval_pairs, cfg.train.mixed_precision, cfg.train.strategy = 6, "off", "default"
    cfg.evaluate_on, cfg.seed = None, 3
    for key, value in train.items():
        setattr(cfg.train, key, value)
    cfg.validate()
    return cfg


def train_run(cfg, out: Path, *, resume: bool = False) -> dict:
    from sensorium.pipelines.common.rundir import RunDir
    from sensorium.pipelines.translation.train import train

    run = RunDir.create(out, "translation", resume=resume)
    if not resume:
        run.set_status("training")
    return train(cfg, run, resume=resume)


def manifest(out: Path) -> dict:
    return json.loads((out / "sensorium.json").read_text())


def steps(out: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (out / "checkpoints").glob("step-*.keras"))


def test_chrf_every_n_steps_and_the_plateau_rule(pairs, tmp_path):
    out = tmp_path / "run"
    cfg = make_config(pairs, eval_every_steps=2, chrf_min_gain=1000.0, chrf_patience=2, epochs=5)
    summary = train_run(cfg, out)
    assert summary["stop_reason"] == "chrf_plateau" and summary["hours"] > 0
    assert manifest(out)["summary"]["stop_reason"] == "chrf_plateau"
    vc = summary["validation_chrf"]
    # the first evaluation sets the baseline; the next two gain less than the minimum
    assert vc["evaluations"] == 3 and vc["pairs"] == 6 and 0 <= vc["best"] <= 100
    rows = list(csv.DictReader((out / "validation_chrf.csv").open()))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert summary["epochs"] < 5  # stopped long before the schedule's end
    history = list(csv.DictReader((out / "history.csv").open()))
    assert "val_chrf" in history[0]
    kept = steps(out)
    assert 2 <= len(kept) <= 3 and kept[-1] >= 6  # rotated: only the newest `keep_checkpoints`


def test_hour_cap_stops_and_is_recorded(pairs, tmp_path):
    out = tmp_path / "run"
    summary = train_run(make_config(pairs, max_hours=1e-9, epochs=3), out)
    assert summary["stop_reason"] == "max_hours" and summary["epochs"] == 1
    assert manifest(out)["summary"]["hours"] >= 0


def train_killed_at(cfg, out, step: int, monkeypatch) -> None:
    """Train `cfg` into `out` until the LongRun callback has finished step `step`, then interrupt it."""
    from sensorium.pipelines.translation.longrun import LongRun

    original = LongRun.on_train_batch_end

    def killed(self, batch, logs=None):
        original(self, batch, logs)
        if self.step == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(LongRun, "on_train_batch_end", killed)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, out)
    monkeypatch.undo()


def test_killed_mid_epoch_resumes_past_a_corrupt_checkpoint(pairs, tmp_path, monkeypatch, caplog):
    out = tmp_path / "run"
    cfg = make_config(pairs, eval_every_steps=1, keep_checkpoints=3, epochs=2, chrf_patience=0)
    caplog.set_level(logging.INFO)
    train_killed_at(cfg, out, 4, monkeypatch)
    planned = int(next(r.getMessage() for r in caplog.records if "validation chrF" in r.getMessage()).split()[1]
                  .split("/")[1])  # "step 1/T ...": steps per epoch x 2
    caplog.clear()
    assert steps(out) == [2, 3, 4] and manifest(out)["status"] == "training"
    newest = out / "checkpoints" / "step-000000004.keras"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated
    before = json.loads((out / "checkpoints" / "step-000000003.json").read_text())
    assert before["epochs_done"] == 0 and len(before["evaluations"]) == 3

    summary = train_run(cfg, out, resume=True)
    refused = [r.getMessage() for r in caplog.records if "refusing checkpoint" in r.getMessage()]
    assert len(refused) == 1 and "step-000000004.keras" in refused[0] and "\n" not in refused[0]
    assert any("resuming from checkpoint step-000000003.keras" in r.getMessage() for r in caplog.records)
    assert summary["epochs"] == 2 and summary["stop_reason"] == "epochs"
    # progress counts the killed epoch's second pass, whole, from the step the resume starts at
    resumed = [r.getMessage() for r in caplog.records if "validation chrF" in r.getMessage()][0]
    assert resumed.startswith(f"step 4/{3 + planned} "), (resumed, planned)
    rows = list(csv.DictReader((out / "validation_chrf.csv").open()))
    assert [int(r["step"]) for r in rows][:4] == [1, 2, 3, 4]  # the evaluations before the kill survive
    assert summary["validation_chrf"]["evaluations"] == len(rows) > 4
    assert manifest(out)["status"] == "complete" and (out / "model.keras").is_file()


def test_no_usable_checkpoint_is_one_line_and_exit_1(pairs, tmp_path, monkeypatch, capsys):
    from sensorium.apps import main as sensorium_app
    from sensorium.pipelines.common.config import config_to_dict
    out = tmp_path / "run"
    cfg = make_config(pairs, eval_every_steps=1, epochs=1, chrf_patience=0)
    train_killed_at(cfg, out, 2, monkeypatch)
    (out / "config.json").write_text(json.dumps(config_to_dict(cfg)))
    for path in (out / "checkpoints").glob("step-*.keras"):
        path.write_bytes(b"PK\x03\x04 garbled")
    capsys.readouterr()
    assert sensorium_app.main(["train", "translation", "--out", str(out), "--resume", "-q"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no usable checkpoint" in err
    with pytest.raises(ModelError, match="no usable checkpoint"):
        from sensorium.pipelines.common.strategy import make_strategy
        from sensorium.pipelines.translation.longrun import load_newest_good

        load_newest_good(out / "checkpoints", make_strategy("default"))


def test_resume_with_fewer_epochs_ends_there_and_the_card_says_so(pairs, tmp_path, monkeypatch, capsys):
    """`--resume --epochs N` ends the run after N epochs; the manifest and the card record the change and the
    schedule the restored optimizer keeps (the one the run was compiled with)."""
    from sensorium.apps import main as sensorium_app
    from sensorium.pipelines.common.config import config_to_dict

    out = tmp_path / "run"
    cfg = make_config(pairs, eval_every_steps=2, epochs=4, chrf_patience=0, average_last=2)
    train_killed_at(cfg, out, 3, monkeypatch)
    (out / "config.json").write_text(json.dumps(config_to_dict(cfg)))
    assert sensorium_app.main(["train", "translation", "--out", str(out), "--resume", "--epochs", "2", "-q"]) == 0
    data = manifest(out)
    assert data["status"] == "complete" and data["summary"]["epochs"] == 2
    assert [(c["from"], c["to"]) for c in data["epochs_changed"]] == [(4, 2)]
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 2
    per_epoch = data["summary"]["steps_per_epoch"]
    assert data["summary"]["schedule_steps"] == 4 * per_epoch  # the restored optimizer's plan, not the new end
    card = (out / "model_card.md").read_text()
    assert (f"resumed with `--resume --epochs 2`: it stopped after 2 epochs, on a learning-rate schedule planned "
            f"for {4 * per_epoch:,} steps (4 epochs of {per_epoch:,} steps;") in card
    assert "| stopped | epochs after " in card and "| weights kept | the mean of the last 2 checkpoints (step-" in card
    assert "translated a sentence at a time" in card and "Sources are read up to" not in card
    assert sensorium_app.main(["train", "translation", "--out", str(out), "--resume", "--epochs", "3", "-q"]) == 2
    assert "already complete" in capsys.readouterr().err


def test_resume_with_new_epochs_before_any_checkpoint_plans_the_schedule_anew(pairs, tmp_path, monkeypatch):
    """Killed before its first checkpoint, a run resumed with `--epochs N` builds its optimizer anew: its
    schedule is planned for N epochs, and the card says so (not the epochs it was started with)."""
    from sensorium.apps import main as sensorium_app
    from sensorium.pipelines.common.config import config_to_dict

    out = tmp_path / "run"
    cfg = make_config(pairs, eval_every_steps=1000, epochs=4, chrf_patience=0)
    train_killed_at(cfg, out, 1, monkeypatch)
    assert steps(out) == []
    (out / "config.json").write_text(json.dumps(config_to_dict(cfg)))
    assert sensorium_app.main(["train", "translation", "--out", str(out), "--resume", "--epochs", "2", "-q"]) == 0
    data = manifest(out)
    per_epoch = data["summary"]["steps_per_epoch"]
    assert [(c["from"], c["to"]) for c in data["epochs_changed"]] == [(4, 2)]
    assert data["summary"]["epochs"] == 2 and data["summary"]["schedule_steps"] == 2 * per_epoch
    assert f"planned for {2 * per_epoch:,} steps (2 epochs of" in (out / "model_card.md").read_text()


def test_warm_start_and_checkpoint_averaging(pairs, tmp_path):
    import keras

    from sensorium.pipelines.common.artifacts import load_keras

    first = tmp_path / "first"
    train_run(make_config(pairs, epochs=1), first)
    out = tmp_path / "warm"
    summary = train_run(make_config(pairs, epochs=2, eval_every_steps=3, init_from=str(first), average_last=2,
                                   chrf_patience=0),
                        out)
    assert summary["init_from"] == str(first)
    # the warm start is scored before training (row 0): a reference, outside the stopping rule's count
    rows = list(csv.DictReader((out / "validation_chrf.csv").open()))
    assert int(rows[0]["step"]) == 0 and [int(r["step"]) for r in rows[1:]] == list(range(3, 3 * len(rows), 3))
    vc = summary["validation_chrf"]
    assert vc["start"] == float(rows[0]["chrf"]) and vc["evaluations"] == len(rows) - 1
    assert "start" not in train_run(make_config(pairs, epochs=1, eval_every_steps=3), tmp_path / "cold")[
        "validation_chrf"]
    assert (out / "tokenizer.model").read_bytes() == (first / "tokenizer.model").read_bytes()
    used = summary["averaged_checkpoints"]
    assert len(used) == 2
    mean = [(a + b) / 2 for a, b in zip(*(load_keras(out / "checkpoints" / n).get_weights() for n in used))]
    final = keras.saving.load_model(out / "model.keras", safe_mode=True, compile=False).get_weights()
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(mean, final))
    card = (out / "model_card.md").read_text()
    assert f"| warm start | from {first} (its weights and tokenizer) |" in card
    assert f"| weights kept | the mean of the last 2 checkpoints ({used[0]}, {used[1]}) |" in card
    assert f"validation chrF | {vc['start']:.2f} at the start, best {vc['best']:.2f}" in card

    wider = make_config(pairs, epochs=1, init_from=str(first))
    wider.model.embed_dim = 32
    with pytest.raises(UsageError, match="architecture differs") as info:
        train_run(wider, tmp_path / "wider")
    assert "\n" not in str(info.value)


def test_the_long_run_config_warm_starts_the_bundled_translator():
    """assets/configs/translation-long.json resolves, asks for the long-run machinery, and keeps the bundled
    translator's architecture, so that its warm start (`init_from`) is not refused."""
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.translation.config import TranslationConfig

    root = Path(__file__).resolve().parents[2]
    cfg = resolve_config(TranslationConfig, root / "assets/configs/translation-long.json", {})
    bundled = resolve_config(TranslationConfig, root / "assets/models/translation/config.json", {})
    assert cfg.train.init_from == "translation"
    assert cfg.model == bundled.model
    assert "builtin:debian-de" in cfg.data.extra_specs and cfg.data.spec == "builtin:ui-de"
    assert cfg.train.eval_pairs > 0 and cfg.train.chrf_patience >= 1 and cfg.train.max_hours
    assert cfg.train.average_last >= 2 and cfg.train.keep_checkpoints >= cfg.train.average_last
    assert cfg.beam > 1 and cfg.train.length_penalty_grid and 2.0 in cfg.train.length_penalty_grid
