"""LogMelSpectrogram (against librosa and tf.signal, serialisation, TFLite builtins) and SpecAugment."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sensorium.models.blocks.audio import (
    FrequencyWarp,
    LogMelSpectrogram,
    SpecAugment,
    UtteranceNormalization,
    frames_for_samples,
)

SR = 16000
# librosa centres a win_length window inside each n_fft frame ((512 - 400) / 2 = 56 zeros on the
# left); tf.signal pads at the end. Starting our input 56 samples later aligns the two exactly.
LIBROSA_SHIFT = (512 - 400) // 2


def _chirp_and_noise(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """100 Hz -> 4 kHz linear chirp at 0.5 plus white noise at 0.05, float32 (n,)."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * (100 * t + (4000 - 100) / (2 * seconds) * t**2)
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * np.sin(phase) + 0.05 * noise).astype(np.float32)


def _librosa_log_mel(y: np.ndarray) -> np.ndarray:
    librosa = pytest.importorskip("librosa")
    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=512, win_length=400, hop_length=160, window="hann", center=False,
        power=2.0, n_mels=80, fmin=20, fmax=7600, htk=True, norm=None,
    )  # (80, frames)
    return np.log(mel + 1e-6).T  # (frames, 80)


def _agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(max abs diff, mean abs diff, correlation) over the frames both have."""
    n = min(len(ours), len(ref))
    diff = np.abs(ours[:n] - ref[:n])
    return float(diff.max()), float(diff.mean()), float(np.corrcoef(ours[:n].ravel(), ref[:n].ravel())[0, 1])


def _close_to_librosa(ours: np.ndarray, ref: np.ndarray) -> bool:
    # Measured on this clip: max 0.013, mean 0.0024, correlation 0.9999985. The residue is the mel
    # filter banks: tf.signal draws HTK triangles in mel space, librosa (htk=True) in Hz.
    max_diff, mean_diff, corr = _agreement(ours, ref)
    return ours.shape[1] == ref.shape[1] and max_diff < 0.05 and mean_diff < 0.01 and corr > 0.9999


def test_frames_for_samples():
    assert [frames_for_samples(n) for n in (0, 399, 400, 559, 560, 16000)] == [0, 0, 1, 1, 2, 98]
    lengths = frames_for_samples(np.array([16000, 8000, 100]))
    assert lengths.dtype == np.int64 and lengths.tolist() == [98, 48, 0]
    assert frames_for_samples(1000, frame_length=256, frame_step=128) == 6
    layer = LogMelSpectrogram(frame_length=256, frame_step=128, fft_length=256)
    assert layer.frames_for_samples(1000) == 6
    with pytest.raises(TypeError):
        frames_for_samples(1.5)


def test_log_mel_matches_librosa():
    y = _chirp_and_noise()
    ref = _librosa_log_mel(y)  # (97, 80)
    ours = keras.ops.convert_to_numpy(LogMelSpectrogram()(y[None, LIBROSA_SHIFT:]))[0]
    assert ours.shape == (frames_for_samples(SR - LIBROSA_SHIFT), 80) == (98, 80)
    assert ref.shape == (97, 80)
    max_diff, mean_diff, corr = _agreement(ours, ref)
    assert _close_to_librosa(ours, ref), (max_diff, mean_diff, corr)


@pytest.mark.parametrize("mistake", ["frame_step", "alignment", "no_log", "mel_range"])
def test_librosa_comparison_catches_mistakes(mistake):
    """The tolerance above is tight enough to fail for a wrong front end."""
    y = _chirp_and_noise()
    ref = _librosa_log_mel(y)
    layer = LogMelSpectrogram(
        frame_step=176 if mistake == "frame_step" else 160,
        upper_edge_hertz=8000.0 if mistake == "mel_range" else 7600.0,
    )
    start = 0 if mistake == "alignment" else LIBROSA_SHIFT
    ours = keras.ops.convert_to_numpy(layer(y[None, start:]))[0]
    if mistake == "no_log":
        ours = np.exp(ours)
    assert not _close_to_librosa(ours, ref)


def test_matches_tf_signal_stft():
    """The matmul DFT equals tf.signal.stft (periodic Hann, end zero-padding) up to float32 rounding."""
    y = _chirp_and_noise(0.5, seed=3)[None]
    layer = LogMelSpectrogram()
    stft = tf.signal.stft(y, 400, 160, 512, window_fn=tf.signal.hann_window, pad_end=False)
    power = tf.math.real(stft) ** 2 + tf.math.imag(stft) ** 2  # (1, T, 257)
    mel = tf.signal.linear_to_mel_weight_matrix(80, 257, SR, 20.0, 7600.0)
    ref = np.log(tf.matmul(power, mel).numpy() + 1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(y)), ref, atol=1e-3)


@pytest.mark.parametrize("kwargs", [{}, dict(frame_length=256, frame_step=128, fft_length=256),
                                    dict(frame_length=300, fft_length=1024, num_mel_bins=40)])
def test_training_fft_route_matches_the_matmul_route(kwargs):
    """Training computes the DFT with an FFT, inference (and export) with the matmul: the same numbers,
    also for short clips (no frames) and integer PCM."""
    layer = LogMelSpectrogram(**kwargs)
    y = np.stack([_chirp_and_noise(0.7, seed=4), 0.001 * _chirp_and_noise(0.7, seed=5)])  # loud and faint
    trained, served = (keras.ops.convert_to_numpy(layer(y, training=t)) for t in (True, False))
    assert trained.shape == served.shape and trained.dtype == np.float32
    np.testing.assert_allclose(trained, served, atol=2e-3)
    assert np.abs(trained - served).mean() < 1e-4
    assert layer(np.zeros((2, 100), np.float32), training=True).shape == (2, 0, layer.num_mel_bins)
    pcm = (y * 20000).astype(np.int16)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(pcm, training=True)),
                               keras.ops.convert_to_numpy(layer(pcm)), atol=2e-3)


def test_shapes_dtype_and_short_input():
    layer = LogMelSpectrogram()
    symbolic = layer(keras.Input((None,)))
    assert tuple(symbolic.shape) == (None, None, 80) and symbolic.dtype == "float32"
    assert tuple(LogMelSpectrogram()(keras.Input((16000,))).shape) == (None, 98, 80)
    batch = np.zeros((3, 4000), np.int16)  # integer PCM is cast; silence is log(offset)
    out = keras.ops.convert_to_numpy(layer(batch))
    assert out.shape == (3, 23, 80) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.log(1e-6), rtol=1e-6)
    assert keras.ops.convert_to_numpy(layer(np.zeros((1, 399), np.float32))).shape == (1, 0, 80)
    with pytest.raises(ValueError, match="waveforms"):
        layer(np.zeros((1, 400, 1), np.float32))
    with pytest.raises(ValueError, match="fft_length"):
        LogMelSpectrogram(fft_length=256)
    with pytest.raises(ValueError, match="upper_edge_hertz"):
        LogMelSpectrogram(upper_edge_hertz=9000.0)


def test_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = LogMelSpectrogram()
        assert layer.compute_dtype == "float32"
        out = layer(_chirp_and_noise(0.1)[None])
        assert keras.ops.convert_to_numpy(out).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _front_end_model() -> keras.Model:
    waveform = keras.Input((None,), name="waveform")
    features = LogMelSpectrogram(num_mel_bins=40, upper_edge_hertz=8000.0, name="log_mel")(waveform)
    features = UtteranceNormalization(name="utterance_normalization")(features)
    features = FrequencyWarp(0.2, seed=1, name="frequency_warp")(features)
    features = SpecAugment(freq_mask_width=5, seed=1, name="spec_augment")(features)
    return keras.Model(waveform, keras.layers.Dense(4, name="dense")(features))


def test_config_and_keras_file_round_trip(tmp_path):
    layer = LogMelSpectrogram(sample_rate=8000, frame_length=200, frame_step=80, fft_length=256,
                              num_mel_bins=40, lower_edge_hertz=0.0, upper_edge_hertz=4000.0, log_offset=1e-5)
    clone = LogMelSpectrogram.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    y = _chirp_and_noise(0.25)[None]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(y)), keras.ops.convert_to_numpy(layer(y)))
    augment = SpecAugment(freq_masks=3, freq_mask_width=7, time_masks=1, time_mask_fraction=0.1,
                          mask_value=0.0, seed=5)
    assert SpecAugment.from_config(augment.get_config()).get_config() == augment.get_config()

    model = _front_end_model()
    path = tmp_path / "front_end.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.get_layer("log_mel"), LogMelSpectrogram)
    assert loaded.get_layer("log_mel").get_config() == model.get_layer("log_mel").get_config()
    assert loaded.get_layer("spec_augment").get_config() == model.get_layer("spec_augment").get_config()
    x = np.stack([_chirp_and_noise(0.5, seed=s) for s in (1, 2)])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_tflite_builtins_with_dynamic_length(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    model = _front_end_model()  # FrequencyWarp and SpecAugment included: they must vanish at inference
    export_dir = str(tmp_path / "saved_model")
    model.export(export_dir, format="tf_saved_model", verbose=False)  # input signature (None, None)
    converter = tf.lite.TFLiteConverter.from_saved_model(export_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails if Flex ops are needed
    interpreter = litert.Interpreter(model_content=converter.convert())
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not ops & {"RFFT2D", "COMPLEX_ABS", "REAL", "IMAG", "RANDOM_UNIFORM", "MULTINOMIAL"}, ops
    inp = interpreter.get_input_details()[0]
    assert list(inp["shape_signature"]) == [-1, -1]
    for samples in (16000, 7777):
        x = _chirp_and_noise(samples / SR, seed=samples)[None]
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        expected = model.predict(x, verbose=0)
        assert out.shape == expected.shape == (1, frames_for_samples(samples), 4)
        np.testing.assert_allclose(out, expected, atol=1e-3)


# ------------------------------------------------------------------------------------------ SpecAugment


def _features(batch: int = 8, frames: int = 200, bins: int = 80) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, frames, bins)).astype(np.float32) - 5.0


def _runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


def test_spec_augment_is_identity_at_inference():
    x = _features()
    layer = SpecAugment(seed=0)
    for training in (None, False, 0):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=training)), x)
    model = keras.Sequential([keras.Input((None, 80)), SpecAugment(seed=0)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_spec_augment_masks_bands_with_the_mean():
    x = _features()
    out = keras.ops.convert_to_numpy(SpecAugment(seed=3)(x, training=True))
    means = x.mean(axis=(1, 2))
    masked_any = False
    for example, original, mean in zip(out, x, means, strict=True):
        changed = example != original  # (T, F); x is continuous, so only masking changes a value
        np.testing.assert_allclose(example[changed], mean, rtol=1e-5)
        cols, rows = changed.all(axis=0), changed.all(axis=1)  # masked bins (F,), masked frames (T,)
        np.testing.assert_array_equal(changed, cols[None, :] | rows[:, None])  # whole bands only
        assert len(_runs(cols)) <= 2 and cols.sum() <= 2 * 15
        assert len(_runs(rows)) <= 2 and rows.sum() <= 2 * 10  # 0.05 * 200 frames per mask
        masked_any |= bool(changed.any())
    assert masked_any


@pytest.mark.parametrize("axis", ["freq", "time"])
def test_spec_augment_band_widths(axis):
    """One band per example: its width ranges over 0..configured maximum, never beyond."""
    x = _features(batch=64)
    if axis == "freq":
        layer = SpecAugment(freq_masks=1, freq_mask_width=15, time_masks=0, mask_value=0.0, seed=11)
        limit = 15
    else:
        layer = SpecAugment(freq_masks=0, time_masks=1, time_mask_fraction=0.05, mask_value=0.0, seed=11)
        limit = 10  # 0.05 * 200 frames
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    masked = (out == 0.0).all(axis=1 if axis == "freq" else 2)  # (B, F) or (B, T)
    widths = [sum(_runs(m)) for m in masked]
    assert all(len(_runs(m)) <= 1 for m in masked)
    assert max(widths) <= limit and max(widths) >= limit - 3 and len(set(widths)) > 5


def test_spec_augment_seed_is_deterministic():
    x = _features()
    a = keras.ops.convert_to_numpy(SpecAugment(seed=42)(x, training=True))
    b = keras.ops.convert_to_numpy(SpecAugment(seed=42)(x, training=True))
    c = keras.ops.convert_to_numpy(SpecAugment(seed=43)(x, training=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    layer = SpecAugment(seed=42)
    first, second = (keras.ops.convert_to_numpy(layer(x, training=True)) for _ in range(2))
    assert not np.array_equal(first, second)  # fresh masks on every call


def test_spec_augment_bins_fewer_than_width():
    x = _features(batch=4, frames=20, bins=6)
    out = keras.ops.convert_to_numpy(SpecAugment(freq_mask_width=15, time_masks=0, seed=0)(x, training=True))
    assert out.shape == x.shape and np.isfinite(out).all()
    with pytest.raises(ValueError, match="mask_value"):
        SpecAugment(mask_value="median")


def test_spec_augment_trains_with_dynamic_shapes():
    """In a compiled training step (graph mode, T unknown until run time) the masks still apply."""
    model = keras.Sequential([keras.Input((None, 80)), SpecAugment(seed=0), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    x = _features(batch=4, frames=50)
    history = model.fit(x, np.zeros((4, 50, 3), np.float32), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    augment = tf.function(lambda v: model.layers[0](v, training=True),
                          input_signature=[tf.TensorSpec((None, None, 80), tf.float32)])
    x = _features(batch=4, frames=61)
    features = keras.ops.convert_to_numpy(augment(tf.constant(x)))
    assert features.shape == x.shape and (features != x).any()


# ------------------------------------------------------------------- UtteranceNormalization, FrequencyWarp


def test_utterance_normalization_removes_level_and_channel():
    log_mel, norm = LogMelSpectrogram(), UtteranceNormalization()
    wave = _chirp_and_noise(1.0)
    base = norm(log_mel(wave[None])).numpy()[0]
    live = base.max(-1) > -50
    assert abs(base[live].mean()) < 1e-3 and base[live].std() == pytest.approx(1.0, rel=0.01)
    quiet = norm(log_mel(0.3 * wave[None])).numpy()[0]  # 10 dB quieter (far quieter, the log floor shows)
    np.testing.assert_allclose(quiet, base, atol=0.05)  # measured: max 0.028, mean 3e-5
    spectrum = np.fft.rfft(wave)
    tilted = np.fft.irfft(spectrum * np.linspace(0.3, 2.0, spectrum.size), wave.size).astype(np.float32)
    raw_shift = np.abs(log_mel(tilted[None]).numpy()[0] - log_mel(wave[None]).numpy()[0]).mean()
    normed_shift = np.abs(norm(log_mel(tilted[None])).numpy()[0] - base).mean()
    assert normed_shift < 0.3 * raw_shift  # a fixed EQ is mostly a per-bin offset: the mean takes it away


def test_utterance_normalization_ignores_padding_but_the_edge():
    log_mel, norm = LogMelSpectrogram(), UtteranceNormalization()
    wave = _chirp_and_noise(0.5)
    alone = norm(log_mel(wave[None])).numpy()[0]
    padded = norm(log_mel(np.pad(wave, (0, 8000))[None])).numpy()[0]
    # two frames straddle the end and count in the statistics: measured mean 0.022, max 0.157
    difference = np.abs(padded[: len(alone)] - alone)
    assert difference.mean() < 0.05 and difference.max() < 0.25
    assert np.all(padded[len(alone) + 2 :] < -5)  # padding stays far below speech
    silent = norm(log_mel(np.zeros((1, 4000), np.float32))).numpy()
    assert np.all(np.isfinite(silent))


def test_frequency_warp_moves_formants_in_training_only():
    x = np.zeros((64, 10, 40), np.float32)
    x[:, :, 20] = 1.0  # one "formant" at bin 20
    layer = FrequencyWarp(0.2, seed=0)
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    warped = layer(x, training=True).numpy()
    centre = (warped[:, 0] * np.arange(40)).sum(-1) / warped[:, 0].sum(-1)
    assert centre.min() < 18.5 and centre.max() > 21.5  # moved both ways: 20 / (1 +- 0.2) is 16.7..25
    assert np.all((centre > 15.5) & (centre < 26))
    assert np.all(np.diff(warped[0], axis=0) == 0)  # one factor per utterance, every frame alike
    np.testing.assert_array_equal(FrequencyWarp(0.0)(x, training=True).numpy(), x)
    clone = FrequencyWarp.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="max_warp"):
        FrequencyWarp(0.7)
