"""`sensorium tune`: search spaces and their narrowing, searches on tiny data (best config, resume after
an interrupt and after the budget ran out, Hyperband's epochs), bad input, and the `--config` round trip
of every task's config.json."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from sensorium.apps import main as sensorium_app
from sensorium.pipelines.common.config import config_from_dict, config_to_dict, resolve_config
from sensorium.pipelines.tuning.space import Choice, Float, Int, SearchSpace
from sensorium.runtime.errors import UsageError
from sensorium.runtime.tasks import TASKS

ASSETS = Path(__file__).resolve().parents[2] / "assets"
# Tiny CNNs on the shapes folder (tests/conftest.py): a trial takes a few seconds.
TINY = ["--image-size", "16", "--widths", "4,8", "--batch-size", "16", "--seed", "3", "--patience", "0", "-q"]


def space() -> SearchSpace:
    return SearchSpace(task="image", objective="val_accuracy", direction="max", params=(
        Float("train.learning_rate", 1e-4, 1e-2, log=True),
        Choice("train.batch_size", [8, 16, 32]),
        Choice("model.widths", [[4, 8], [8, 16]]),
        Int("model.blocks_per_stage", 1, 2),
        Float("model.dropout", 0.0, 0.5, step=0.1),
    ))


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


# === search spaces ===
def test_every_tunable_task_declares_a_space_of_its_own_config_keys():
    tunable = [name for name in TASKS if TASKS.get(name).search_space]
    assert sorted(tunable) == ["image", "sentiment", "speech", "translation"]
    for name in tunable:
        task = TASKS.get(name)
        s = task.load("search_space")
        base = config_to_dict(task.load("config")())
        assert s.task == name and s.direction in ("min", "max")
        for p in s.params:  # every name is a key of the config, and the default lies in the space
            value = base
            for key in p.name.split("."):
                assert key in value, f"{name}: {p.name} is not a config key"
                value = value[key]
            assert p.contains(value), f"{name}: default {p.name}={value!r} is outside {p.describe()}"
        hp = s.to_hyperparameters(base)
        assert s.apply(base, hp.values) == base  # the default point decodes to the default config


def test_choices_of_lists_travel_as_strings_and_come_back_as_lists():
    s = space()
    base = config_to_dict(TASKS.get("image").load("config")())
    hp = s.to_hyperparameters(base)
    assert hp.values["model.widths"] == "4,8"  # the default (32,64,128) is outside: the first choice
    data = s.apply(base, {**hp.values, "model.widths": "8,16", "train.batch_size": 32})
    assert data["model"]["widths"] == [8, 16] and data["train"]["batch_size"] == 32
    assert not s.base_in_space(base) and s.base_in_space(data)


def test_narrowing_ranges_choices_and_pins():
    s = space().narrow({"train.learning_rate": {"min": 1e-3, "max": 2e-3},
                        "train.batch_size": {"max": 16},
                        "model.widths": {"values": [[8, 16]]},
                        "model.blocks_per_stage": {"values": [2]},
                        "model.dropout": 0.25})
    lr = s.get("train.learning_rate")
    assert (lr.low, lr.high, lr.log) == (1e-3, 2e-3, True)
    assert s.get("train.batch_size").values == (8, 16)
    assert s.get("model.widths").values == ((8, 16),)
    assert s.get("model.blocks_per_stage").kind == "choice" and s.get("model.blocks_per_stage").values == (2,)
    assert "model.dropout" not in s.names and s.fixed == {"model.dropout": 0.25}
    assert s.apply({"model": {}, "train": {}}, {})["model"]["dropout"] == 0.25


@pytest.mark.parametrize("data, message", [
    ({"model.depth": {"min": 1}}, "unknown name 'model.depth'"),
    ({"train.learning_rate": {"min": 0.01, "max": 0.001}}, "empty range"),
    ({"train.batch_size": {"min": 100, "max": 200}}, "empty range"),
    ({"model.widths": {"values": []}}, "non-empty list"),
    ({"train.learning_rate": {"min": "fast"}}, "expected a number"),
    ({"train.learning_rate": {"min": 0, "log": True}}, "log-scaled range needs min > 0"),
    ({"model.blocks_per_stage": {"min": 1.5}}, "whole numbers"),
    ({"model.dropout": {"low": 0.1}}, "unknown key(s) low"),
    ({}, "expected a mapping"),
    ({"train.learning_rate": 0.001, "train.batch_size": 8, "model.widths": [4, 8], "model.blocks_per_stage": 1,
      "model.dropout": 0.1}, "nothing is left to search"),
])
def test_bad_space_files_fail_with_one_line(data, message):
    with pytest.raises(UsageError) as info:
        space().narrow(data)
    assert message in str(info.value) and "\n" not in str(info.value)


# === searches ===
@pytest.fixture()
def counted_training(monkeypatch):
    """Counts, per trial directory, the calls of the image task's train function."""
    import sensorium.pipelines.image.train as image_train

    real = image_train.train
    calls: list[tuple[str, bool]] = []

    def train(config, run, *, resume=False):
        calls.append((run.path.name, resume))
        return real(config, run, resume=resume)

    monkeypatch.setattr(image_train, "train", train)
    return calls


def tune(argv, capsys):
    code = sensorium_app.main(["tune", "image", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_two_trial_search_writes_a_loadable_best_config(image_folder, tmp_path, capsys, counted_training):
    from sensorium.pipelines.image.config import ImageClassificationConfig

    out = tmp_path / "tune"
    code, stdout, _ = tune(["--data", str(image_folder), "--out", str(out), "--algorithm", "random",
                            "--max-trials", "2", "--epochs", "2", "--json", *TINY,
                            "--space", str(write(tmp_path / "s.json", {"model.widths": {"values": [[4, 8], [8, 16]]},
                                                                        "model.blocks_per_stage": 1}))], capsys)
    assert code == 0, stdout
    summary = json.loads(stdout)
    assert summary["status"] == "complete" and summary["trials"] == 2 and summary["finished"] == 2
    assert [c[0] for c in counted_training] == ["0000", "0001"]
    # the first trial of a random search is the base configuration
    first = json.loads((out / "trials" / "0000" / "config.json").read_text())
    assert first["train"]["learning_rate"] == 2e-3 and first["model"]["widths"] == [4, 8]
    assert first["evaluate_on"] is None and first["model"]["blocks_per_stage"] == 1  # test split unseen, pin kept
    # the objective is the kept epoch's validation accuracy, and the best trial has it
    rows = list(csv.DictReader((out / "trials.csv").open()))
    scores = {r["trial"]: float(r["val_accuracy"]) for r in rows}
    for trial, score in scores.items():
        history = list(csv.DictReader((out / "trials" / trial / "history.csv").open()))
        assert float(history[-1]["val_accuracy"]) == pytest.approx(score)
    best = summary["best_trial"]
    assert scores[best] == max(scores.values()) and summary["best_value"] == pytest.approx(scores[best])
    # best_config.json is a valid --config: the best trial's config, evaluated on the test split again
    best_config = json.loads((out / "best_config.json").read_text())
    trial_config = json.loads((out / "trials" / best / "config.json").read_text())
    assert best_config == {**trial_config, "evaluate_on": "test"}
    config = resolve_config(ImageClassificationConfig, out / "best_config.json", {})
    assert config_to_dict(config) == best_config
    assert (out / "plots" / "objective.png").stat().st_size > 1000
    assert "## Best: trial " + best in (out / "results.md").read_text()
    state = json.loads((out / "tune.json").read_text())
    assert state["status"] == "complete" and state["best"]["trial"] == best
    # train it again from the file: the same model (same seed, same data)
    run = tmp_path / "again"
    assert sensorium_app.main(["train", "image", "--config", str(out / "best_config.json"), "--out", str(run),
                               "-q"]) == 0
    capsys.readouterr()
    again = list(csv.DictReader((run / "history.csv").open()))
    assert float(again[-1]["val_accuracy"]) == pytest.approx(scores[best], abs=1e-6)
    assert json.loads((run / "metrics.json").read_text())["split"] == "test"


def test_resume_after_an_interrupt_keeps_finished_trials(image_folder, tmp_path, capsys, monkeypatch,
                                                         counted_training):
    import sensorium.pipelines.image.train as image_train

    out = tmp_path / "tune"
    argv = ["--data", str(image_folder), "--out", str(out), "--algorithm", "random", "--max-trials", "3",
            "--epochs", "1", *TINY]
    counting = image_train.train

    def killed_in_second_trial(config, run, *, resume=False):
        if run.path.name == "0001":
            raise KeyboardInterrupt
        return counting(config, run, resume=resume)

    monkeypatch.setattr(image_train, "train", killed_in_second_trial)
    assert tune(argv, capsys)[0] == 130
    assert [c[0] for c in counted_training] == ["0000"]
    monkeypatch.setattr(image_train, "train", counting)
    code, stdout, err = tune(argv, capsys)
    assert code == 0, err
    # trial 0000 is not trained again; the interrupted 0001 runs, then 0002
    assert [c[0] for c in counted_training] == ["0000", "0001", "0002"]
    state = json.loads((out / "tune.json").read_text())
    assert state["status"] == "complete" and state["trials"] == 3
    assert [s["trials_before"] for s in state["sessions"]] == [0, 1]
    assert stdout.count("completed") == 3


def test_budget_cut_trial_resumes_from_its_last_epoch(image_folder, tmp_path, capsys, monkeypatch,
                                                      counted_training):
    """When the budget runs out inside a trial, training stops between batches; started again (with more
    budget) the trial continues from its checkpoint instead of starting over."""
    from sensorium.pipelines.common import callbacks

    out = tmp_path / "tune"
    argv = ["--data", str(image_folder), "--out", str(out), "--algorithm", "random", "--max-trials", "2",
            "--epochs", "3", "--budget-minutes", "60", *TINY]

    def out_of_time_in_epoch_2(self, epoch, logs=None):  # the clock passes the deadline after one epoch of 0001
        if epoch >= 1 and self.model is not None and "0001" in str(counted_training[-1][0]):
            raise callbacks.DeadlinePassed("the time budget ran out")

    monkeypatch.setattr(callbacks.Deadline, "on_epoch_begin", out_of_time_in_epoch_2)
    code, stdout, err = tune(argv, capsys)
    assert code == 0, err  # the finished trial is reported
    assert json.loads((out / "tune.json").read_text())["status"] == "stopped"
    rows = {r["trial"]: r for r in csv.DictReader((out / "trials.csv").open())}
    assert rows["0000"]["status"] == "COMPLETED" and rows["0001"]["status"] == "INTERRUPTED"
    manifest = json.loads((out / "trials" / "0001" / "sensorium.json").read_text())
    assert manifest["status"] == "training"
    monkeypatch.undo()
    import sensorium.pipelines.image.train as image_train

    real = image_train.train
    calls = []
    monkeypatch.setattr(image_train, "train", lambda c, r, resume=False: calls.append((r.path.name, resume))
                        or real(c, r, resume=resume))
    code, stdout, err = tune(argv, capsys)
    assert code == 0, err
    assert calls == [("0001", True)]  # continued, not restarted; 0000 untouched
    history = list(csv.DictReader((out / "trials" / "0001" / "history.csv").open()))
    assert [int(h["epoch"]) for h in history] == [1, 2, 3]
    assert json.loads((out / "tune.json").read_text())["status"] == "complete"


def test_hyperband_trials_train_its_epochs(image_folder, tmp_path, capsys):
    out = tmp_path / "tune"
    code, stdout, err = tune(["--data", str(image_folder), "--out", str(out), "--max-trials", "3", "--epochs", "3",
                              "--json", *TINY], capsys)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["trials"] == 3
    epochs = [json.loads((out / "trials" / t / "config.json").read_text())["train"]["epochs"]
              for t in ("0000", "0001", "0002")]
    assert epochs == [1, 1, 1]  # the largest bracket starts many one-epoch trials (factor 3, max 3 epochs)


# === bad input ===
def test_bad_tune_requests_fail_with_one_line(image_folder, tmp_path, capsys):
    base = ["--data", str(image_folder), *TINY]
    code, _, err = tune(["--out", str(tmp_path / "a"), "--budget-minutes", "0", *base], capsys)
    assert code == 2 and "--budget-minutes must be positive" in err and len(err.strip().splitlines()) == 1
    code, _, err = tune(["--out", str(tmp_path / "a"), "--space", str(write(tmp_path / "bad.json",
                                                                               {"model.size": {"min": 1}})), *base],
                        capsys)
    assert code == 2 and "unknown name 'model.size'" in err and len(err.strip().splitlines()) == 1
    # a tuning directory of another task
    other = tmp_path / "speech-tune"
    other.mkdir()
    write(other / "tune.json", {"kind": "tune", "task": "speech", "identity": {}})
    code, _, err = tune(["--out", str(other), *base], capsys)
    assert code == 2 and "tuning directory of the 'speech' task, not 'image'" in err
    # a run directory, and a folder of something else
    code, _, err = tune(["--out", str(ASSETS / "models" / "mnist"), *base], capsys)
    assert code == 2 and "is a run directory, not a tuning directory" in err
    stuff = tmp_path / "stuff"
    stuff.mkdir()
    (stuff / "notes.txt").write_text("mine")
    code, _, err = tune(["--out", str(stuff), *base], capsys)
    assert code == 2 and "not a tuning directory" in err and (stuff / "notes.txt").read_text() == "mine"
    # hyperband needs room for brackets
    code, _, err = tune(["--out", str(tmp_path / "b"), "--epochs", "1", *base], capsys)
    assert code == 2 and "hyperband needs train.epochs >= 2" in err


def test_a_search_started_again_with_another_space_is_refused(image_folder, tmp_path, capsys):
    out = tmp_path / "tune"
    argv = ["--data", str(image_folder), "--out", str(out), "--algorithm", "random", "--max-trials", "1",
            "--epochs", "1", *TINY]
    assert tune(argv, capsys)[0] == 0
    code, _, err = tune([*argv, "--space", str(write(tmp_path / "s.json", {"model.dropout": 0.3}))], capsys)
    assert code == 2 and "different space" in err and "--overwrite" in err
    code, _, err = tune([*argv, "--algorithm", "bayesian"], capsys)
    assert code == 2 and "different algorithm" in err
    assert tune([*argv, "--max-trials", "2"], capsys)[0] == 0  # more trials: the same search goes on
    assert json.loads((out / "tune.json").read_text())["trials"] == 2


def test_show_space_lists_names_ranges_and_pins(tmp_path, capsys):
    code, out, _ = tune(["--out", str(tmp_path / "x"), "--show-space", "--space",
                         str(write(tmp_path / "s.yaml", {"model.dropout": 0.1}))], capsys)
    assert code == 0
    assert "train.learning_rate" in out and "0.0003 .. 0.01, log" in out and "model.dropout" in out
    assert "= 0.1 (pinned)" in out and not (tmp_path / "x").exists()


# === --config round trip ===
@pytest.mark.parametrize("task", ["image", "speech", "sentiment", "translation", "autoencoder", "vae", "gan"])
def test_default_config_json_is_a_valid_config_file(task, tmp_path):
    cls = TASKS.get(task).load("config")
    data = config_to_dict(cls())
    again = resolve_config(cls, write(tmp_path / "config.json", data), {})
    assert config_to_dict(again) == data


@pytest.mark.parametrize("name, task", [("mnist", "image"), ("speech", "speech"), ("sentiment", "sentiment"),
                                        ("translation", "translation")])
def test_bundled_run_config_json_is_a_valid_config_file(name, task):
    """Every bundled run directory's resolved config.json reads back as --config with each of its values
    (keys added to a config since the bundled run was trained take their defaults)."""
    path = ASSETS / "models" / name / "config.json"
    data = json.loads(path.read_text())
    config = resolve_config(TASKS.get(task).load("config"), path, {})

    def within(small, big, where=""):
        for key, value in small.items():
            if isinstance(value, dict) and value:
                within(value, big[key], f"{where}{key}.")
            else:
                assert big[key] == value, f"{where}{key}"

    within(data, config_to_dict(config))
    assert config_to_dict(config_from_dict(type(config), data)) == config_to_dict(config)
