"""`sensorium export` for speech run directories: SavedModel (log_probs + in-graph greedy transcribe)
and TFLite variants (float32, float16, int8 behind a float front end) with transcript parity, the
edge runner without TensorFlow, the manifest inside, rejection of a file that fails parity, and
one-line errors for what speech does not offer. One tiny model trained on tone "speech" serves all."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sensorium.apps import main as sensorium_app

RATE = 16000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tone_speech):
    """A complete speech run directory (config.json naming a manifest of 80 tone utterances: 64 train,
    8 test), its model trained in-process for ~10 s."""
    import keras

    from sensorium.models.speech import SpeechRecognizerSpec, build_speech_recognizer, ctc_loss
    from sensorium.pipelines.common.config import config_to_dict
    from sensorium.pipelines.common.rundir import RunDir
    from sensorium.pipelines.speech.config import SpeechConfig, SpeechDataConfig
    from sensorium.pipelines.speech.data import feature_statistics, load_speech_split, pad_batch
    from sensorium.pipelines.speech.train import transcript_language_model
    from sensorium.runtime.transcripts import ALPHABET

    root = tmp_path_factory.mktemp("speech-export")
    rng = np.random.default_rng(0)
    rows = ["path,transcript"]
    for i in range(80):
        text = "".join(rng.choice(list("abc"), size=rng.integers(1, 4)))
        sf.write(root / f"u{i:02d}.wav", tone_speech(text, rng), RATE, subtype="PCM_16")
        rows.append(f"u{i:02d}.wav,{text}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")

    keras.utils.set_random_seed(0)
    spec = SpeechRecognizerSpec(num_mel_bins=32, conv_channels=(8,), rnn_units=24, rnn_layers=1, dropout=0.0,
                                spec_augment={}, freq_warp=0.0, normalization="global")  # tones: one bin a letter
    cfg = SpeechConfig(data=SpeechDataConfig(spec=str(root / "manifest.csv")), model=spec, seed=1)
    train = load_speech_split(cfg.data.spec, cfg.data, seed=cfg.seed, default_split="train", model_spec=spec)
    x, y = pad_batch(train.waves, train.targets(spec))
    mean, variance = feature_statistics(train.waves, spec)
    model = build_speech_recognizer(spec, ALPHABET, feature_mean=mean, feature_variance=variance,
                                    language_model=transcript_language_model(train.texts))  # no vocabulary: greedy
    model.compile(keras.optimizers.Adam(0.02), ctc_loss)
    model.fit(x, y, epochs=70, batch_size=16, verbose=0)
    run = RunDir.create(root / "run", "speech")
    run.write_json("config.json", config_to_dict(cfg))
    model.save(run.model_path)
    run.set_status("complete")
    return run.path


@pytest.fixture(scope="module")
def test_split(run_dir):
    """The run's @test utterances (the default parity data) and Keras's greedy transcripts of them."""
    from sensorium.export.speech import SpeechExportSource
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.runtime.ctc import greedy_decode

    source = SpeechExportSource.load(inspect_artifact(run_dir))
    items = source.evaluation_data(None)
    log_probs = source.run_keras(items)
    return items, log_probs, [greedy_decode(lp) for lp in log_probs]


@pytest.fixture(scope="module")
def exported(run_dir):
    """Every TFLite variant speech offers and the SavedModel, exported once from the command line."""
    assert sensorium_app.main(["export", "--model", str(run_dir), "--format", "tflite", "--quantize", "all",
                               "-q"]) == 0
    assert sensorium_app.main(["export", "--model", str(run_dir), "--format", "saved_model", "-q"]) == 0
    return run_dir / "exports"


def test_model_learned_something(test_split):
    items, _, keras_texts = test_split
    assert len(items) == 8
    assert sum(bool(t) for t in keras_texts) >= 3  # non-empty transcripts: parity compares real text


def test_every_variant_passes_parity(exported, test_split):
    items, _, _ = test_split
    parity = json.loads((exported / "parity.json").read_text())["variants"]
    assert set(parity) == {"none", "float16", "int8", "saved_model"}  # `all` skips dynamic for speech
    sizes = {}
    for variant, row in parity.items():
        assert row["passed"] and row["count"] == len(items), variant
        assert row["agreement"] == row["transcript_agreement"] >= row["agreement_threshold"]
        assert row["wer"] == pytest.approx(row["keras_wer"]) and row["cer"] == pytest.approx(row["keras_cer"])
        assert row["latency_ms_median"] > 0 and row["latency_calls"] == len(items)
        sizes[variant] = row["size_bytes"]
    # float32 files: rounding only (2.7e-5 and 1.4e-4 on log-probs for two training outcomes of this tiny
    # model, Keras's LSTM and HoistedLSTM alike on the same weights); float16 is ~0.7
    assert parity["none"]["max_abs_diff"] < 5e-4 and parity["saved_model"]["max_abs_diff"] < 1e-4
    assert parity["none"]["runtime"] == "ai-edge-litert"
    assert sizes["float16"] < 0.6 * sizes["none"] and sizes["int8"] < sizes["none"]
    for variant, name in (("none", "float32"), ("float16", "float16"), ("int8", "int8")):
        assert (exported / f"model-{name}.tflite").stat().st_size == sizes[variant]


def test_edge_runner_without_tensorflow(exported, test_split, tmp_path):
    """The .tflite files transcribe in a process where importing TensorFlow or Keras raises, and
    their greedy transcripts equal Keras's."""
    items, _, keras_texts = test_split
    np.save(tmp_path / "waves.npy", np.asarray(items.waves, dtype=object), allow_pickle=True)
    script = f"""
import sys, json
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from sensorium.runtime.speech import SpeechRecognizer
waves = np.load({str(tmp_path / 'waves.npy')!r}, allow_pickle=True)
out = {{}}
for name in ("float32", "float16", "int8"):
    edge = SpeechRecognizer.from_tflite({str(exported)!r} + f"/model-{{name}}.tflite")
    out[name] = edge.transcribe(list(waves))
    assert edge.log_probs([waves[0]])[0].shape == (edge.frames(len(waves[0])), 29)
    assert edge.lm is not None and edge.lm.order == 3 and edge.lexicon is None  # the model's LM, read back
    # shorter than one frame: padded with silence to 0.25 s (4,000 samples); a toy model may hear a letter
    assert edge.transcribe([np.zeros(100, np.float32)]) == edge.transcribe([np.zeros(4000, np.float32)])
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules), "TensorFlow was imported"
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    transcripts = json.loads(proc.stdout.splitlines()[-1])
    for name, texts in transcripts.items():
        assert texts == keras_texts, name


def test_saved_model_reloads_and_matches_keras(exported, test_split):
    import tensorflow as tf

    items, keras_log_probs, keras_texts = test_split
    loaded = tf.saved_model.load(str(exported / "saved_model"))
    assert {"serving_default", "transcribe"} <= set(loaded.signatures)
    spec = loaded.signatures["serving_default"].structured_input_signature[1]["waveform"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, None]
    for wave, want, text in zip(items.waves, keras_log_probs, keras_texts):
        got = loaded.signatures["serving_default"](waveform=tf.constant(wave[None]))["log_probs"].numpy()[0]
        np.testing.assert_allclose(got, want, atol=1e-4)
        said = loaded.signatures["transcribe"](waveform=tf.constant(wave[None]))["text"].numpy()
        assert said.shape == (1,) and said[0].decode() == text
    meta = json.loads((exported / "saved_model" / "assets" / "sensorium.json").read_text())
    assert meta["task"] == "speech" and meta["input"]["name"] == "waveform" and "transcribe" in meta["signatures"]


def test_manifest_travels_inside(exported):
    from ai_edge_litert.interpreter import Interpreter

    from sensorium.runtime.tflite import flatbuffer_part, read_all
    from sensorium.runtime.transcripts import ALPHABET

    data = (exported / "model-int8.tflite").read_bytes()
    meta = json.loads(read_all(data)["sensorium.json"])
    assert meta["task"] == "speech" and meta["variant"] == "int8" and meta["alphabet"] == ALPHABET
    assert meta["blank"] == 0 and meta["sample_rate"] == 16000 and meta["subsampling"] == 2
    assert meta["input"] == {**meta["input"], "name": "waveform", "dtype": "float32", "shape": [1, None]}
    assert meta["output"]["shape"] == [1, None, len(ALPHABET) + 1] and "CTC" in meta["decoding"]
    assert meta["language_model"]["format"] == "arpa" and "\\3-grams:" in meta["language_model"]["arpa"]
    interpreter = Interpreter(model_content=flatbuffer_part(data))
    detail = interpreter.get_input_details()[0]
    assert list(detail["shape_signature"]) == [1, -1] and detail["dtype"] == np.float32  # float I/O in int8


def test_how_a_models_clips_start_and_end_travels_to_the_edge(exported, run_dir, tmp_path):
    """A model trained on cut clips (`data.lead_silence`) says so in its export's manifest, and so does
    one that records how its clips end (`tail_silence`, as `train speech` does); the edge recogniser
    reads both to cut and top up clips the same way by default. This model records neither."""
    from sensorium.export.speech import SpeechExportSource
    from sensorium.pipelines.common.artifacts import inspect_artifact
    from sensorium.runtime.speech import SpeechRecognizer
    from sensorium.runtime.tflite import flatbuffer_part, pack, read_all

    source = SpeechExportSource.load(inspect_artifact(run_dir))
    plain = source.manifest("tflite", "float16", "0")
    assert "lead_silence" not in plain and "tail_silence" not in plain
    cut = SpeechExportSource(source.artifact, source.model, {**source.info, "lead_silence": 0.08,
                                                             "tail_silence": 0.25})
    manifest = cut.manifest("tflite", "float16", "0")
    assert manifest["lead_silence"] == 0.08 and manifest["tail_silence"] == 0.25
    data = (exported / "model-float16.tflite").read_bytes()
    assert "lead_silence" not in json.loads(read_all(data)["sensorium.json"])
    files = {"sensorium.json": json.dumps(manifest).encode()}
    (tmp_path / "cut.tflite").write_bytes(pack(flatbuffer_part(data), files))
    edge = SpeechRecognizer.from_tflite(tmp_path / "cut.tflite")
    assert edge.info["lead_silence"] == 0.08 and edge.info["tail_silence"] == 0.25
    info = SpeechRecognizer.from_tflite(exported / "model-float16.tflite").info
    assert "lead_silence" not in info and "tail_silence" not in info


def test_parity_failure_rejects_the_file(run_dir, tmp_path, capsys, monkeypatch):
    """A converter that returns a model computing something else (an untrained twin) is caught."""
    import keras

    from sensorium.export.speech import SpeechExportSource
    from sensorium.models.speech import SpeechRecognizerSpec, build_speech_recognizer
    from sensorium.runtime.transcripts import ALPHABET

    real = SpeechExportSource.to_tflite

    def garbage(self, variant, calibration=None):
        keras.utils.set_random_seed(123)
        other = build_speech_recognizer(SpeechRecognizerSpec(num_mel_bins=32, conv_channels=(8,), rnn_units=24,
                                                             rnn_layers=1, dropout=0.0, spec_augment={},
                                                             normalization="global"), ALPHABET)
        return real(dataclasses.replace(self, model=other), variant, calibration)

    monkeypatch.setattr(SpeechExportSource, "to_tflite", garbage)
    out = tmp_path / "bad.tflite"
    code = sensorium_app.main(["export", "--model", str(run_dir), "--format", "tflite", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "parity check failed" in err and not out.exists()
    report = json.loads((tmp_path / "parity.json").read_text())["variants"]["none"]
    assert report["passed"] is False and report["agreement"] < 0.99


def test_parity_data_overrides_the_test_split(run_dir, tmp_path, capsys):
    manifest = run_dir.parent / "manifest.csv"
    code = sensorium_app.main(["export", "--model", str(run_dir), "--format", "tflite", "--out",
                               str(tmp_path / "m.tflite"), "--parity-data", f"{manifest}@validation[:5]", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(rows) == 1 and rows[0]["count"] == 5 and rows[0]["passed"]
    assert (tmp_path / "m.tflite").is_file() and (tmp_path / "parity.json").is_file()


def test_what_speech_does_not_offer_is_one_line(run_dir, tmp_path, capsys):
    for argv, needle in ((["--format", "tflite", "--quantize", "dynamic"], "not available for speech"),
                         (["--format", "hub-module"], "not available for speech models"),
                         (["--format", "tflite", "--quantize", "int8", "--calibration-data", "cal.npy"], "not a .npy")):
        code = sensorium_app.main(["export", "--model", str(run_dir), "--out", str(tmp_path / "x"), *argv])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code in (1, 2) and len(errors) == 1 and needle in errors[0] and "Traceback" not in err, err
        assert not (tmp_path / "x").exists()


def test_transcribe_runs_every_artifact_alike(run_dir, exported, tmp_path, capsys, tone_speech):
    """`transcribe` on the run directory, the SavedModel and the .tflite (edge runner) gives the same text."""
    from sensorium.apps import transcribe as transcribe_app

    rng = np.random.default_rng(11)
    files = []
    for text in ("abc", "ca", "bab"):
        path = tmp_path / f"{text}.wav"
        sf.write(path, tone_speech(text, rng), 16000)
        files.append(str(path))
    texts = {}
    for name, model in (("run", run_dir), ("saved_model", exported / "saved_model"),
                        ("tflite", exported / "model-float32.tflite")):
        assert transcribe_app.main([*files, "--model", str(model), "--json", "--batch-size", "1"]) == 0, name
        texts[name] = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert texts["run"] == texts["saved_model"] == texts["tflite"]


def test_batch_job_on_every_artifact_kind(run_dir, exported, test_split, tmp_path):
    """`sensorium evaluate --out` runs the same job on the run directory, the SavedModel and a .tflite.
    The exported files carry no run config, so a manifest without splits is split with the default
    seed there (the run used seed 1): the two exported files see the same items and give the same
    WER (parity showed identical transcripts); the run directory sees its own test split."""
    from sensorium.pipelines.batch.job import run_job

    items, _, _ = test_split
    spec = f"{run_dir.parent / 'manifest.csv'}@test"
    results = {}
    for name, path in (("run", run_dir), ("saved_model", exported / "saved_model"),
                       ("tflite", exported / "model-float32.tflite")):
        results[name] = run_job(path, spec, tmp_path / name, progress=False)
        assert results[name]["metrics"]["failed"] == 0
    assert results["run"]["count"] == len(items)
    ids = {name: [json.loads(line)["id"] for line in (tmp_path / name / "results.jsonl").read_text().splitlines()]
           for name in results}
    assert ids["saved_model"] == ids["tflite"]
    assert results["tflite"]["metrics"]["wer"] == pytest.approx(results["saved_model"]["metrics"]["wer"])
    assert (tmp_path / "tflite" / "plots" / "wer_by_duration.png").is_file()
