"""The speech recogniser: shapes follow `output_frames`, a tiny model learns to transcribe tone
"words" with CTC, it saves/reloads in safe mode and converts to TFLite builtins with parity."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.runtime.ctc import VOCAB_SIZE, encode_text, greedy_decode
from sensorium.runtime.transcripts import ALPHABET


def _tiny_spec(bidirectional=True):
    """A tiny model for tone "speech". Its normalisation is the training set's statistics: a tone
    letter lights one mel bin, and per-utterance statistics (the default, made for broadband speech)
    would depend on which other letters the utterance holds."""
    from sensorium.models.speech import SpeechRecognizerSpec

    return SpeechRecognizerSpec(num_mel_bins=32, conv_channels=(8,), rnn_units=24, rnn_layers=1,
                                bidirectional=bidirectional, dropout=0.0, spec_augment={}, freq_warp=0.0,
                                normalization="global")


def _batch(texts, spec, rng, tone_speech):
    from sensorium.models.speech import output_frames

    waves = [tone_speech(t, rng) for t in texts]
    n = max(len(w) for w in waves)
    x = np.zeros((len(waves), n), "float32")
    for i, w in enumerate(waves):
        x[i, : len(w)] = w
    width = max(len(t) for t in texts)
    y = np.zeros((len(texts), 1 + width), "int32")
    for i, (w, t) in enumerate(zip(waves, texts)):
        y[i, 0] = output_frames(spec, len(w))
        y[i, 1 : 1 + len(t)] = encode_text(t)
    return x, y


def test_output_frames_match_the_model():
    from sensorium.models.speech import build_speech_recognizer, output_frames

    spec = _tiny_spec()
    model = build_speech_recognizer(spec, ALPHABET)
    for samples in (8000, 12345):
        out = model.predict(np.zeros((1, samples), "float32"), verbose=0)
        assert out.shape == (1, output_frames(spec, samples), VOCAB_SIZE)
        np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, atol=1e-4)  # log-probabilities


def test_global_normalization_holds_the_given_statistics_and_the_vocabulary_travels():
    from sensorium.models.blocks.metadata import read_task_metadata
    from sensorium.models.speech import build_speech_recognizer

    spec = _tiny_spec()
    spec.normalization = "global"
    mean, variance = np.full(32, -5.0, "float32"), np.full(32, 4.0, "float32")
    model = build_speech_recognizer(spec, ALPHABET, feature_mean=mean, feature_variance=variance,
                                    vocabulary=["two", "one", "two"])
    norm = model.get_layer("feature_normalization")
    np.testing.assert_allclose(np.ravel(norm.mean), mean)
    assert read_task_metadata(model)["info"]["vocabulary"] == ["one", "two"]
    spec.normalization = "cepstral"
    with pytest.raises(ValueError, match="normalization"):
        build_speech_recognizer(spec, ALPHABET)


@pytest.fixture(scope="module")
def trained(tone_speech):
    import keras

    from sensorium.models.speech import build_speech_recognizer, ctc_loss

    keras.utils.set_random_seed(0)
    spec = _tiny_spec()
    rng = np.random.default_rng(0)
    texts = ["ab", "ba", "abc", "cab", "ca", "bc", "acb", "cba"]
    x, y = _batch(texts, spec, rng, tone_speech)
    model = build_speech_recognizer(spec, ALPHABET)
    model.get_layer("feature_normalization").adapt(model.get_layer("log_mel")(x))
    model.compile(keras.optimizers.Adam(0.01), ctc_loss)
    history = model.fit(x, y, epochs=250, batch_size=8, verbose=0)
    return model, spec, texts, x, y, history.history["loss"]


def test_tiny_model_learns_to_transcribe(trained):
    model, spec, texts, x, y, losses = trained
    assert losses[-1] < 0.1 * losses[0]
    log_probs = model.predict(x, verbose=0)
    assert [greedy_decode(lp, length=n) for lp, n in zip(log_probs, y[:, 0])] == texts  # padding frames cut off


def test_safe_mode_round_trip(trained, tmp_path):
    import keras

    model, _, _, x, _, _ = trained
    model.save(tmp_path / "speech.keras")
    again = keras.saving.load_model(tmp_path / "speech.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_tflite_builtins_parity(trained, tmp_path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model, _, _, x, _, _ = trained
    export_dir = tmp_path / "sm"
    model.export(str(export_dir), format="tf_saved_model", verbose=False,
                 input_signature=[tf.TensorSpec((1, None), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_saved_model(str(export_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for wave in (x[0], x[3, :7000]):
        interpreter.resize_tensor_input(inp["index"], (1, len(wave)))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], wave[None])
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(out["index"]), model.predict(wave[None], verbose=0),
                                   atol=2e-3)
