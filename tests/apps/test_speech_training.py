"""`sensorium train speech` / `evaluate` end to end on tone "speech" (each letter a tone): the run
directory, WER/CER, per-utterance results, resume after an interrupt, skipped bad files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from sensorium.apps import main as sensorium_app

RATE = 16000
# Tone letters light one mel bin each: the training set's statistics normalise them (per-utterance
# statistics are made for broadband speech), and speech augmentation is off (tested on its own below).
TINY = {"model": {"num_mel_bins": 32, "conv_channels": [8], "rnn_units": 24, "rnn_layers": 1, "dropout": 0.0,
                  "spec_augment": {}, "normalization": "global", "freq_warp": 0.0},
        "augment": {"levers": []},
        "train": {"batch_size": 4, "learning_rate": 0.01, "schedule": "constant", "early_stopping_patience": 0,
                  "warmup_epochs": 0}}


@pytest.fixture(scope="module")
def tone_data(tmp_path_factory, tone_speech):
    """40 utterances of 1-3 tone letters (a few at 44.1 kHz stereo: converted on reading) + a config."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    rows = ["path,transcript"]
    for i in range(40):
        text = "".join(rng.choice(list("abc"), size=rng.integers(1, 4)))
        if i % 10 == 9:
            wave = tone_speech(text, rng, 44100)
            sf.write(root / f"u{i:02d}.flac", np.stack([wave, wave], 1), 44100)
            rows.append(f"u{i:02d}.flac,{text.upper()}")
        else:
            sf.write(root / f"u{i:02d}.wav", tone_speech(text, rng), RATE, subtype="PCM_16")
            rows.append(f"u{i:02d}.wav,{text}")
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    rows.append("broken.wav,abc")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "tiny.json").write_text(json.dumps(TINY))
    return root


@pytest.fixture(scope="module")
def trained_run(tone_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("speech") / "run"
    code = sensorium_app.main(["train", "speech", "--config", str(tone_data / "tiny.json"), "--data",
                               str(tone_data / "manifest.csv"), "--out", str(out), "--epochs", "40", "--seed", "1",
                               "-q"])
    assert code == 0
    return out


def test_train_evaluate_and_results(trained_run, tone_data, tmp_path, capsys):
    out = trained_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "speech" and metrics["split"] == "test" and metrics["count"] >= 4
    history = (out / "history.csv").read_text().splitlines()
    first, last = (float(history[i].split(",")[2]) for i in (1, -1))
    assert last < 0.5 * first  # validation CTC loss halves at least
    # the run evaluates with the model's own words (its training transcripts) and open-vocabulary greedy
    opened = metrics["metrics"]["open_vocabulary"]
    assert opened["cer"] <= 0.25  # measured 0.0; an untrained model outputs nothing: CER 1
    assert metrics["metrics"]["decoding"].startswith("vocabulary of ")
    results = [json.loads(line) for line in (out / "eval_results.jsonl").read_text().splitlines()]
    train_ids = set((out / "splits" / "train.txt").read_text().split())
    manifest = dict(line.split(",") for line in (tone_data / "manifest.csv").read_text().splitlines()[1:])
    known = {manifest[i].lower() for i in train_ids}
    assert all(w in known for r in results if "hypothesis" in r for w in r["hypothesis"].split())
    assert {"id", "reference", "hypothesis", "word_errors"} <= set(results[0])
    skipped = (out / "splits" / "skipped.tsv").read_text() if (out / "splits" / "skipped.tsv").is_file() else ""
    assert "broken.wav" in skipped or any("broken.wav" in r.get("id", "") and "error" in r for r in results)
    assert json.loads((out / "config.json").read_text())["model"]["rnn_units"] == 24
    card = (out / "model_card.md").read_text()
    assert "WER" in card and "LSTM" in card
    # evaluate again from the command line, into another folder
    code = sensorium_app.main(["evaluate", "--model", str(out), "--out", str(tmp_path / "eval"), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == (1 if again["metrics"]["failed"] else 0)  # a job with failed items exits 1
    assert again["metrics"]["wer"] == pytest.approx(metrics["metrics"]["wer"])
    assert again["count"] == metrics["count"] and again["metrics"]["failed"] == metrics["metrics"].get("skipped", 0)
    records = [json.loads(line) for line in (tmp_path / "eval" / "results.jsonl").read_text().splitlines()]
    assert {"index", "id", "ok", "reference", "text", "duration"} <= set(next(r for r in records if r["ok"]))
    assert (tmp_path / "eval" / "plots" / "wer_by_duration.png").is_file()
    assert "## By duration" in (tmp_path / "eval" / "report.md").read_text()


def test_transcribe_json_segments_and_bad_inputs(trained_run, tone_data, tmp_path, capsys, monkeypatch, tone_speech):
    """One object per input in order; a long recording is cut at its pauses into timed segments;
    empty, corrupt, missing and too-long inputs are per-item failures; exit code 1 when any failed."""
    from sensorium.apps import transcribe as transcribe_app
    from sensorium.runtime import speech as transcribe_lib

    rng = np.random.default_rng(7)
    pause = rng.normal(0, 0.002, int(0.6 * RATE)).astype("float32")
    words = ["abc", "ba", "cab", "ac", "bca", "cb"]
    sf.write(tmp_path / "long.wav", np.concatenate([np.concatenate([tone_speech(w, rng), pause]) for w in words * 4]),
             RATE)
    sf.write(tmp_path / "empty.wav", np.zeros(0, "float32"), RATE)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(tmp_path / "toolong.wav", np.zeros(RATE * 3, "float32"), RATE)
    monkeypatch.setattr(transcribe_lib, "WINDOW_SECONDS", 7.0)  # several windows: the carry-over is exercised
    inputs = [str(tone_data / "u00.wav"), str(tmp_path / "long.wav"), str(tmp_path / "empty.wav"),
              str(tmp_path / "corrupt.wav"), str(tmp_path / "missing.wav"), str(tmp_path / "toolong.wav")]
    monkeypatch.setattr(transcribe_lib, "MAX_SECONDS", 60.0)
    code = transcribe_app.main([*inputs[:-1], "--model", str(trained_run), "--json", "--max-segment", "3"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and [r["input"] for r in rows] == inputs[:-1]
    assert [r["ok"] for r in rows] == [True, True, False, False, False]
    assert all("\n" not in r["error"] for r in rows[2:])
    assert "empty" in rows[2]["error"] and "no such file" in rows[4]["error"]
    long = rows[1]
    expected = len(words) * 4 * (0.05 + 0.6) + 0.2 * sum(len(w) for w in words) * 4
    assert long["duration"] == pytest.approx(expected, abs=0.05)
    segments = long["segments"]
    assert len(segments) >= len(words) * 4 * 0.65 / 3.0  # 15.6 s of speech cut into pieces of at most 3 s
    assert all(s["end"] - s["start"] <= 3.0 + 1e-6 for s in segments)
    assert all(a["end"] <= b["start"] for a, b in zip(segments, segments[1:]))  # in order, no overlap
    assert long["text"] == " ".join(s["text"] for s in segments if s["text"])
    monkeypatch.setattr(transcribe_lib, "MAX_SECONDS", 2.5)
    code = transcribe_app.main([inputs[-1], "--model", str(trained_run), "--json"])
    row = json.loads(capsys.readouterr().out)
    assert code == 1 and not row["ok"] and "limit" in row["error"]


def test_transcribe_refuses_a_model_of_another_task(tmp_path, capsys):
    from sensorium.apps import transcribe as transcribe_app

    sf.write(tmp_path / "a.wav", np.zeros(RATE, "float32"), RATE)
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    code = transcribe_app.main([str(tmp_path / "a.wav"), "--model", str(root / "assets/models/mnist")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "speech" in errors[0] and "Traceback" not in err


def test_resume_after_interrupt(tone_data, tmp_path, interrupt_training):
    out = tmp_path / "run"
    args = ["train", "speech", "--config", str(tone_data / "tiny.json"), "--data", str(tone_data / "manifest.csv"),
            "--out", str(out), "--epochs", "3", "-q"]
    interrupt_training(2)
    assert sensorium_app.main(args) == 130
    assert json.loads((out / "checkpoints" / "state.json").read_text())["epoch"] == 2
    interrupt_training(None)
    assert sensorium_app.main(["train", "speech", "--out", str(out), "--resume", "-q"]) == 0
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert len(state["history"]["loss"]) == 3
    assert json.loads((out / "sensorium.json").read_text())["status"] == "complete"


def test_bad_speech_data_is_one_line(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("path,transcript\nnothing.wav,hello\n")
    code = sensorium_app.main(["train", "speech", "--data", str(tmp_path / "m.csv"), "--out", str(tmp_path / "r"),
                               "--epochs", "1", "-q"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err


def test_transcribe_odd_but_valid_audio(trained_run, tone_data, tmp_path, capsys, tone_speech):
    """0.1 s, all zeros, 8 kHz and 48 kHz, 6 channels: sensible results (silence -> empty text);
    NaN samples: a per-file error. Beam search agrees with greedy on clear input."""
    from sensorium.apps import transcribe as transcribe_app

    rng = np.random.default_rng(3)
    wave = tone_speech("abc", rng)
    sf.write(tmp_path / "short.wav", wave[: RATE // 10], RATE)
    sf.write(tmp_path / "zeros.wav", np.zeros(RATE * 2, "float32"), RATE)
    sf.write(tmp_path / "8k.wav", tone_speech("abc", rng, 8000), 8000)
    sf.write(tmp_path / "48k-6ch.wav", np.repeat(tone_speech("abc", rng, 48000)[:, None], 6, axis=1), 48000)
    sf.write(tmp_path / "nan.wav", np.full(RATE, np.nan, "float32"), RATE, subtype="FLOAT")
    names = ["short.wav", "zeros.wav", "8k.wav", "48k-6ch.wav", "nan.wav"]
    code = transcribe_app.main([*(str(tmp_path / n) for n in names), "--model", str(trained_run), "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1 and [r["ok"] for r in rows] == [True, True, True, True, False]
    assert rows[1]["text"] == "" and rows[1]["segments"] == []  # silence: nothing to transcribe
    assert rows[2]["duration"] == pytest.approx(len(wave) / RATE, abs=0.01)
    assert "NaN" in rows[4]["error"] or "nan" in rows[4]["error"].lower()
    greedy = [r["text"] for r in rows[:4]]
    assert transcribe_app.main([*(str(tmp_path / n) for n in names[:4]), "--model", str(trained_run), "--json",
                                "--beam", "4"]) == 0
    beam = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert greedy[2] == greedy[3] == "abc" and beam[2:] == greedy[2:]  # the same clear words, both ways


def test_bundled_model_on_held_out_voices(capsys):
    """The README's example: the bundled model (Keras and its .tflite on the edge runner) transcribes two
    recordings in voices it never heard (flite rms at 16 kHz, espeak-ng en-029+m7 at 22.05 kHz)."""
    from pathlib import Path

    from sensorium.apps import transcribe as transcribe_app

    examples = Path(__file__).resolve().parents[2] / "assets" / "examples"
    files = [str(examples / "speech-four-two-seven.wav"), str(examples / "speech-turn-on-the-light.wav")]
    for runtime in ("keras", "edge"):
        assert transcribe_app.main([*files, "--json", "--runtime", runtime]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["text"] for r in rows] == ["four two seven", "turn on the light"], runtime


@pytest.mark.slow  # `sensorium tune` itself is covered by tests/pipelines/test_tuning.py in the default run
def test_tune_two_trials(tone_data, tmp_path, capsys):
    """`sensorium tune speech`: two trials on the tone corpus, objective val_loss (lower is better)."""
    from sensorium.pipelines.common.config import resolve_config
    from sensorium.pipelines.speech.config import SpeechConfig

    space = tmp_path / "space.json"
    space.write_text(json.dumps({"model.rnn_units": {"values": [16, 24]}, "model.rnn_layers": 1}))
    out = tmp_path / "tune"
    code = sensorium_app.main(["tune", "speech", "--config", str(tone_data / "tiny.json"), "--data",
                               str(tone_data / "manifest.csv"), "--out", str(out), "--algorithm", "random",
                               "--max-trials", "2", "--epochs", "1", "--space", str(space), "--json", "-q"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["finished"] == 2 and summary["objective"] == "val_loss"
    rows = (out / "trials.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[2]) for r in rows]
    assert summary["best_value"] == min(losses)
    config = resolve_config(SpeechConfig, out / "best_config.json", {})
    assert config.model.rnn_units in (16, 24) and config.model.rnn_layers == 1


def test_training_with_speech_augmentation_and_utterance_normalization(tone_data, tmp_path):
    """The default recipe's levers run in the input pipeline and the model: the run finishes, its
    config records them, and the saved model has per-utterance normalisation and no training-only op.
    `--lead-silence` cuts the clips' leading quiet and the model records it, and how the clips end."""
    import keras

    from sensorium.pipelines.common.artifacts import inspect_artifact

    config = json.loads(json.dumps(TINY))
    config["model"].update(normalization="utterance", freq_warp=0.1)
    config["augment"] = {"levers": ["speed", "eq", "reverb", "telephone", "noise", "babble"], "speed_p": 1.0,
                         "noise_p": 1.0}
    (tmp_path / "aug.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    assert sensorium_app.main(["train", "speech", "--config", str(tmp_path / "aug.json"), "--data",
                               str(tone_data / "manifest.csv"), "--out", str(out), "--epochs", "2",
                               "--lead-silence", "0.05", "-q"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["augment"]["levers"] == config["augment"]["levers"] and saved["model"]["normalization"] == "utterance"
    assert saved["data"]["lead_silence"] == 0.05  # the clips were cut, and the model says so to its recognisers
    info = inspect_artifact(out / "model.keras").info
    assert info["lead_silence"] == 0.05
    assert info["tail_silence"] == pytest.approx(0.03, abs=0.011)  # 0.05 s of quiet after the last tone, less
    # the 30 ms window that reaches into it: recognisers top shorter endings up to that, not to espeak-ng's 0.26 s
    losses = [float(line.split(",")[1]) for line in (out / "history.csv").read_text().splitlines()[1:]]
    assert len(losses) == 2 and all(np.isfinite(losses))
    model = keras.saving.load_model(out / "model.keras", compile=False)
    names = [layer.name for layer in model.layers]
    assert "utterance_normalization" in names and "feature_normalization" not in names
    wave = np.random.default_rng(0).normal(0, 0.1, (1, 8000)).astype("float32")
    np.testing.assert_array_equal(model(wave, training=False), model(wave, training=False))  # no random op
    assert sensorium_app.main(["train", "speech", "--data", str(tone_data / "manifest.csv"), "--out",
                               str(tmp_path / "bad"), "--augment", "speed,echo", "-q"]) == 2
    assert sensorium_app.main(["train", "speech", "--data", str(tone_data / "manifest.csv"), "--out",
                               str(tmp_path / "bad2"), "--lead-silence", "20", "-q"]) == 2


def test_transcribe_vocabulary_files(trained_run, tone_data, tmp_path, capsys):
    """--vocabulary FILE spells only its words, none decodes letter by letter, and a bad file is one
    line and exit 1 before any audio is read."""
    from sensorium.apps import transcribe as transcribe_app

    audio = [str(tone_data / f"u{i:02d}.wav") for i in range(6)]
    (tmp_path / "two.txt").write_text("# the only words allowed\nabc cab\n")
    assert transcribe_app.main([*audio, "--model", str(trained_run), "--json", "--vocabulary",
                                str(tmp_path / "two.txt")]) == 0
    texts = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert len(texts) == 6 and all(set(t.split()) <= {"abc", "cab"} for t in texts)
    assert transcribe_app.main([*audio, "--model", str(trained_run), "--json", "--vocabulary", "none"]) == 0
    opened = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert opened != texts and sum(bool(t) for t in opened) >= 4
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "digits.txt").write_text("ab 42\n")
    for name, message in [("latin1.txt", "not UTF-8"), ("empty.txt", "no words"), ("digits.txt", "alphabet"),
                          ("missing.txt", "does not exist")]:
        code = transcribe_app.main([audio[0], "--model", str(trained_run), "--vocabulary", str(tmp_path / name)])
        captured = capsys.readouterr()
        assert code == 1 and not captured.out, name
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (name, captured.err)


def test_the_run_carries_a_language_model_and_transcribe_takes_another(trained_run, tone_data, tmp_path, capsys):
    """A run records a word n-gram model of its training transcripts and evaluates with it (and
    without it, for comparison); `--lm FILE` trains one on example sentences whose words may then
    be spelled; a bad file or weight is one line."""
    from sensorium.apps import transcribe as transcribe_app
    from sensorium.pipelines.common.artifacts import inspect_artifact

    info = inspect_artifact(trained_run / "model.keras").info
    assert info["language_model"]["format"] == "arpa" and "\\1-grams:" in info["language_model"]["arpa"]
    metrics = json.loads((trained_run / "metrics.json").read_text())["metrics"]
    assert "3-gram language model (weight 0.5)" in metrics["decoding"]
    assert metrics["without_lm"]["wer"] >= 0.0

    audio = [str(tone_data / f"u{i:02d}.wav") for i in range(6)]
    assert transcribe_app.main([*audio, "--model", str(trained_run), "--json"]) == 0
    default = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert transcribe_app.main([*audio, "--model", str(trained_run), "--json", "--lm", "none"]) == 0
    plain = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert transcribe_app.main([*audio, "--model", str(trained_run), "--json", "--lm-weight", "0"]) == 0
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == plain
    assert len(default) == len(plain) == 6
    # a user's sentences: their words may be spelled, and a heavy weight says them wherever it can
    from sensorium.pipelines.speech.predict import load

    (tmp_path / "sentences.txt").write_text("# what this user says\n" + "cab\n" * 9 + "baaa\n")
    recognizer = load(trained_run).configure(language_model=str(tmp_path / "sentences.txt"))
    assert "baaa" in recognizer.lexicon and "baaa" not in load(trained_run).lexicon
    assert transcribe_app.main([*audio, "--model", str(trained_run), "--json", "--lm", str(tmp_path / "sentences.txt"),
                                "--lm-weight", "10"]) == 0
    heavy = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert heavy.count("cab") > default.count("cab"), (heavy, default)
    (tmp_path / "broken.arpa").write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\tgo\n")
    (tmp_path / "digits.txt").write_text("ab 42\n")
    for args, code, message in [(["--lm", str(tmp_path / "broken.arpa")], 1, "no \\end\\ line"),
                                (["--lm", str(tmp_path / "digits.txt")], 1, "alphabet"),
                                (["--lm", str(tmp_path / "missing.arpa")], 1, "does not exist"),
                                (["--lm-weight", "-1"], 2, "--lm-weight must be between 0 and 10"),
                                (["--tail-silence", "soon"], 2, "--tail-silence must be seconds between 0 and 10")]:
        assert transcribe_app.main([audio[0], "--model", str(trained_run), *args]) == code, args
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert not captured.out and len(lines) == 1 and message in lines[0], (args, captured.err)
    assert sensorium_app.main(["evaluate", "--model", "digits", "--lm", "none",
                               "--data", "builtin:mnist@test[:5]"]) == 2
    assert "--lm is for speech models" in capsys.readouterr().err


def test_recording_a_language_model_in_a_run(trained_run, tmp_path, capsys):
    """`python -m sensorium.pipelines.speech.language_model` rewrites the run's model with a language
    model of the user's sentences (their words join the vocabulary) or of its training transcripts;
    the weights stay as they were."""
    import shutil

    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.speech.language_model import main as lm_main
    from sensorium.pipelines.speech.predict import load

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before = inspect_artifact(run / "model.keras").info
    (tmp_path / "mine.txt").write_text("abc cab\ncab cab\nbaaa abc\n")
    assert lm_main(["--model", str(run), "--text", str(tmp_path / "mine.txt"), "--order", "2"]) == 0
    assert "2-gram language model" in capsys.readouterr().out
    after = inspect_artifact(run / "model.keras").info
    assert "\\2-grams:" in after["language_model"]["arpa"] and "\\3-grams:" not in after["language_model"]["arpa"]
    assert set(after["vocabulary"]) == set(before["vocabulary"]) | {"abc", "cab", "baaa"}
    recognizer = load(run)
    assert recognizer.lm.order == 2 and "baaa" in recognizer.lexicon
    assert recognizer.lm.log_prob(("<s>", "abc"), "cab") > recognizer.lm.log_prob(("<s>", "abc"), "abc")
    np.testing.assert_array_equal(recognizer.log_probs([np.zeros(8000, np.float32)])[0],
                                  load(trained_run).log_probs([np.zeros(8000, np.float32)])[0])
    # again from the run's own training transcripts: the vocabulary stays what it was
    assert lm_main(["--model", str(run), "--order", "3"]) == 0
    assert "@train" in capsys.readouterr().out
    again = inspect_artifact(run / "model.keras").info
    assert again["language_model"]["arpa"] == before["language_model"]["arpa"]
    (tmp_path / "bad.txt").write_text("a2b\n")
    assert lm_main(["--model", str(run), "--text", str(tmp_path / "bad.txt")]) == 1
    assert "alphabet" in capsys.readouterr().err
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    assert lm_main(["--model", str(root / "assets/models/mnist")]) == 1  # refused before anything is written
    assert "not 'speech'" in capsys.readouterr().err


def test_recording_how_a_runs_clips_end(trained_run, tmp_path, capsys):
    """`python -m sensorium.pipelines.speech.tail_silence` writes `tail_silence` into a run (one trained
    before the record has none): the median ending of its training clips (the tone clips' 0.03 s), or
    the seconds given; recognition then tops clips up to it, the weights stay as they were, and bad
    input is one line."""
    import shutil

    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.pipelines.speech.predict import load
    from sensorium.pipelines.speech.tail_silence import main as tail_main

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert tail_main(["--model", str(run), "--seconds", "0.4"]) == 0
    assert "tail_silence 0.40 s" in capsys.readouterr().out
    assert inspect_artifact(run / "model.keras").info["tail_silence"] == 0.4
    seen = []
    recognizer = load(run)
    run_batch = recognizer.run_batch
    recognizer.run_batch = lambda x: (seen.append(x.shape[1]), run_batch(x))[1]
    tone = np.sin(2 * np.pi * 500 * np.arange(8000) / 16000).astype(np.float32)  # 0.5 s, loud to the end
    recognizer.log_probs([tone])
    assert seen == [8000 + 6400]  # topped up to 0.4 s
    np.testing.assert_array_equal(recognizer.configure(tail_silence="none").log_probs([tone])[0],
                                  load(trained_run).configure(tail_silence="none").log_probs([tone])[0])
    assert tail_main(["--model", str(run)]) == 0  # from the run's own training clips
    assert "tail_silence 0.03 s" in capsys.readouterr().out
    assert inspect_artifact(run / "model.keras").info["tail_silence"] == pytest.approx(0.03)
    assert tail_main(["--model", str(run), "--seconds", "11"]) == 2
    assert "--seconds must be between 0 and 10" in capsys.readouterr().err
    (run / "config.json").unlink()
    assert tail_main(["--model", str(run)]) == 1
    assert "pass --seconds S" in capsys.readouterr().err
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    assert tail_main(["--model", str(root / "assets/models/mnist")]) == 1
    assert "not 'speech'" in capsys.readouterr().err
