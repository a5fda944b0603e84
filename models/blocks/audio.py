"""In-model audio front end for speech models: waveform -> log-mel spectrogram, and SpecAugment.

``LogMelSpectrogram`` puts feature extraction inside the model, so an exported model takes raw
16 kHz samples. Its STFT is a framed real DFT written as one matrix multiply (window folded into
precomputed cos/sin kernels), not ``tf.signal.stft``: the result is the same power spectrum (within
float32 rounding), and the exported TFLite graph is real-valued builtins only (shape arithmetic,
RESHAPE/GATHER for framing, FULLY_CONNECTED, SPLIT, MUL, ADD, LOG). ``tf.signal.stft`` converts to
TFLite builtins too (RFFT2D, REAL, IMAG; TF 2.21), but those work on complex64 tensors, which the
common delegates (XNNPACK, GPU) do not take, so a delegated graph would be split around them.

``SpecAugment`` (Park et al., 2019) is the identity unless ``training`` is true, so it adds no op,
random or otherwise, to an exported model.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf


def frames_for_samples(num_samples: int | np.ndarray, frame_length: int = 400, frame_step: int = 160):
    """Output frames of ``LogMelSpectrogram`` for ``num_samples`` input samples (no end padding).

    ``max(0, 1 + (num_samples - frame_length) // frame_step)``, as ``tf.signal.frame`` with
    ``pad_end=False``. Accepts an int (returns an int) or an integer array of per-clip lengths
    (returns int64 frame lengths, e.g. for CTC's ``logit_length``).
    """
    n = np.asarray(num_samples)
    if not np.issubdtype(n.dtype, np.integer):
        raise TypeError(f"num_samples must be integers, got {n.dtype}")
    frames = np.maximum(0, (n - int(frame_length)) // int(frame_step) + 1)
    return int(frames) if frames.ndim == 0 else frames.astype(np.int64)


@keras.saving.register_keras_serializable(package="sensorium")
class LogMelSpectrogram(keras.layers.Layer):
    """Float waveform (B, samples) -> natural-log mel power spectrogram (B, frames, num_mel_bins).

    1. frames of ``frame_length`` samples every ``frame_step`` samples, no padding at either end
       (librosa's ``center=False``): ``frames_for_samples`` gives the frame count;
    2. periodic Hann window, zero-padded at the end to ``fft_length``, real DFT
       -> power ``re^2 + im^2`` over ``fft_length // 2 + 1`` bins;
    3. HTK mel filter bank of ``tf.signal.linear_to_mel_weight_matrix`` (triangles of peak 1,
       ``lower_edge_hertz``..``upper_edge_hertz``);
    4. ``log(mel + log_offset)``.

    Defaults: 25 ms windows every 10 ms at 16 kHz, 80 bins from 20 Hz to 7.6 kHz. The number of
    samples may vary from call to call (also in TFLite); clips shorter than ``frame_length`` give
    zero frames. Always computes in float32, also under a mixed-precision policy.

    Two routes to the same numbers (log-mel within 1e-4 of each other): with ``training=True`` the
    DFT is a real FFT (``tf.signal.rfft``: 3x faster on a 2-core CPU, 6.6 against 19.3 ms for 32
    clips of 1.2 s with one thread per op); otherwise one matmul with a windowed DFT kernel, which
    every TFLite runtime runs (the route that exports, predicts and evaluates).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_length: int = 400,
        frame_step: int = 160,
        fft_length: int = 512,
        num_mel_bins: int = 80,
        lower_edge_hertz: float = 20.0,
        upper_edge_hertz: float = 7600.0,
        log_offset: float = 1e-6,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = int(fft_length)
        self.num_mel_bins = int(num_mel_bins)
        self.lower_edge_hertz = float(lower_edge_hertz)
        self.upper_edge_hertz = float(upper_edge_hertz)
        self.log_offset = float(log_offset)
        if min(self.sample_rate, self.frame_length, self.frame_step, self.num_mel_bins) < 1:
            raise ValueError("sample_rate, frame_length, frame_step and num_mel_bins must be >= 1")
        if self.fft_length < self.frame_length:
            raise ValueError(f"fft_length ({fft_length}) must be >= frame_length ({frame_length})")
        if not 0.0 <= self.lower_edge_hertz < self.upper_edge_hertz <= self.sample_rate / 2:
            raise ValueError(
                "need 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2, got "
                f"{lower_edge_hertz}, {upper_edge_hertz} at {sample_rate} Hz"
            )
        if not self.log_offset > 0:
            raise ValueError(f"log_offset must be > 0, got {log_offset}")
        self.num_spectrogram_bins = self.fft_length // 2 + 1
        # Constants rebuilt from the config (not weights): (frame_length, 2K) and (K, num_mel_bins).
        self._dft_kernel = _windowed_dft_kernel(self.frame_length, self.fft_length)
        self._window = _periodic_hann(self.frame_length)  # (L,) for the FFT route
        self._mel_matrix = _mel_matrix(
            self.num_mel_bins, self.num_spectrogram_bins, self.sample_rate,
            self.lower_edge_hertz, self.upper_edge_hertz,
        )

    def frames_for_samples(self, num_samples: int | np.ndarray):
        """Output frames for ``num_samples`` input samples (see the module function)."""
        return frames_for_samples(num_samples, self.frame_length, self.frame_step)

    def build(self, input_shape: tuple) -> None:
        _check_waveform_rank(input_shape)

    def call(self, waveform, training=None):
        # waveform: (B, N) any real dtype
        _check_waveform_rank(tuple(waveform.shape))
        x = tf.cast(waveform, tf.float32)  # (B, N)
        frames = tf.signal.frame(x, self.frame_length, self.frame_step, pad_end=False)  # (B, T, L)
        if training:
            windowed = tf.pad(frames * tf.constant(self._window),
                              [[0, 0], [0, 0], [0, self.fft_length - self.frame_length]])  # (B, T, fft_length)
            spectrum = tf.signal.rfft(windowed, fft_length=[self.fft_length])  # (B, T, K) complex
            power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))  # (B, T, K)
        else:
            spectrum = tf.matmul(frames, tf.constant(self._dft_kernel))  # (B, T, 2K): [re | im]
            real, imag = tf.split(spectrum, 2, axis=-1)  # (B, T, K) each
            power = real * real + imag * imag  # (B, T, K)
        mel = tf.matmul(power, tf.constant(self._mel_matrix))  # (B, T, M)
        return tf.math.log(mel + self.log_offset)  # (B, T, M) float32

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        samples = input_shape[1]
        frames = None if samples is None else self.frames_for_samples(int(samples))
        return (input_shape[0], frames, self.num_mel_bins)

    def compute_output_spec(self, waveform) -> keras.KerasTensor:
        return keras.KerasTensor(self.compute_output_shape(waveform.shape), dtype="float32")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            frame_length=self.frame_length,
            frame_step=self.frame_step,
            fft_length=self.fft_length,
            num_mel_bins=self.num_mel_bins,
            lower_edge_hertz=self.lower_edge_hertz,
            upper_edge_hertz=self.upper_edge_hertz,
            log_offset=self.log_offset,
        )
        return config


def _check_waveform_rank(shape: tuple) -> None:
    if len(shape) != 2:
        raise ValueError(f"LogMelSpectrogram expects waveforms (B, samples), got shape {shape}")


def _periodic_hann(frame_length: int) -> np.ndarray:
    """(frame_length,) float32 periodic Hann window, as tf.signal.hann_window."""
    n = np.arange(frame_length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / frame_length)).astype(np.float32)


def _windowed_dft_kernel(frame_length: int, fft_length: int) -> np.ndarray:
    """(frame_length, 2 * (fft_length // 2 + 1)) float32: [hann * cos | hann * -sin].

    ``frames @ kernel`` is the real DFT of the windowed frames zero-padded at the end to
    ``fft_length`` (the padded rows multiply zeros, so they are left out).
    """
    n = np.arange(frame_length, dtype=np.float64)  # (L,)
    window = _periodic_hann(frame_length).astype(np.float64)  # (L,)
    k = np.arange(fft_length // 2 + 1, dtype=np.float64)  # (K,)
    angle = 2.0 * np.pi * np.outer(n, k) / fft_length  # (L, K); n * k < 2**53, exact in float64
    kernel = np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)
    return kernel.astype(np.float32)  # (L, 2K)


def _mel_matrix(num_mel_bins: int, num_bins: int, sample_rate: int, lower: float, upper: float) -> np.ndarray:
    """(num_bins, num_mel_bins) float32 HTK mel filter bank of tf.signal (evaluated eagerly once)."""
    with tf.init_scope():  # eager even if the layer is built inside a tf.function
        matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=num_mel_bins,
            num_spectrogram_bins=num_bins,
            sample_rate=sample_rate,
            lower_edge_hertz=lower,
            upper_edge_hertz=upper,
            dtype=tf.float64,
        )
        return np.asarray(matrix.numpy(), dtype=np.float32)


@keras.saving.register_keras_serializable(package="sensorium")
class SpecAugment(keras.layers.Layer):
    """Random frequency and time masking of (B, T, F) features, only with ``training=True``.

    For each example independently: ``freq_masks`` bands of width w ~ U{0..freq_mask_width} bins
    and ``time_masks`` bands of width w ~ U{0..floor(time_mask_fraction * T)} frames, each at a
    uniform position, are replaced by ``mask_value``. The default ``"mean"`` is the example's mean
    over all its frames and bins: on unnormalised log-mel features that is the neutral value the
    paper's 0 is after per-utterance normalisation (a 0 in log-mel is loud, not blank). A float sets
    a constant (e.g. 0.0 after a normalisation layer). T counts padding frames too in a padded batch.

    With ``training`` falsy the input is returned unchanged. ``seed`` makes the sequence of masks
    reproducible (two layers built with one seed mask alike, call for call).
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_mask_width: int = 15,
        time_masks: int = 2,
        time_mask_fraction: float = 0.05,
        mask_value: float | str = "mean",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.freq_masks = int(freq_masks)
        self.freq_mask_width = int(freq_mask_width)
        self.time_masks = int(time_masks)
        self.time_mask_fraction = float(time_mask_fraction)
        if min(self.freq_masks, self.freq_mask_width, self.time_masks) < 0:
            raise ValueError("freq_masks, freq_mask_width and time_masks must be >= 0")
        if not 0.0 <= self.time_mask_fraction <= 1.0:
            raise ValueError(f"time_mask_fraction must be in [0, 1], got {time_mask_fraction}")
        if isinstance(mask_value, str):
            if mask_value != "mean":
                raise ValueError(f'mask_value must be "mean" or a number, got {mask_value!r}')
            self.mask_value: float | str = mask_value
        else:
            self.mask_value = float(mask_value)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, features, training: bool | None = None):
        if not training:
            return features  # inference: identity, no random op in the graph
        # features: (B, T, F)
        shape = keras.ops.shape(features)
        batch, time, freq = shape[0], shape[1], shape[2]
        masked = keras.ops.zeros((batch, time, freq), dtype="bool")  # (B, T, F)
        if self.freq_masks and self.freq_mask_width:
            freq_band = self._bands(batch, freq, self.freq_masks, self.freq_mask_width)  # (B, F)
            masked = keras.ops.logical_or(masked, freq_band[:, None, :])
        if self.time_masks and self.time_mask_fraction:
            max_frames = keras.ops.floor(self.time_mask_fraction * keras.ops.cast(time, "float32"))
            time_band = self._bands(batch, time, self.time_masks, max_frames)  # (B, T)
            masked = keras.ops.logical_or(masked, time_band[:, :, None])
        if self.mask_value == "mean":
            value = keras.ops.mean(features, axis=(1, 2), keepdims=True)  # (B, 1, 1)
        else:
            value = keras.ops.cast(self.mask_value, features.dtype)
        return keras.ops.where(masked, value, features)  # (B, T, F)

    def _bands(self, batch, length, count: int, max_width):
        """(B, length) bool: the union of ``count`` random bands per example, each of width
        U{0..min(max_width, length)} at a uniform start with the band inside ``length``."""
        length_f = keras.ops.cast(length, "float32")
        max_width = keras.ops.minimum(keras.ops.cast(max_width, "float32"), length_f)
        u_width = keras.random.uniform((batch, count), seed=self.seed_generator)  # (B, n) in [0, 1)
        width = keras.ops.minimum(keras.ops.floor(u_width * (max_width + 1.0)), max_width)  # (B, n)
        u_start = keras.random.uniform((batch, count), seed=self.seed_generator)  # (B, n)
        start = keras.ops.minimum(
            keras.ops.floor(u_start * (length_f - width + 1.0)), length_f - width
        )  # (B, n) in 0..length - width
        position = keras.ops.cast(keras.ops.arange(length), "float32")  # (length,)
        inside = keras.ops.logical_and(
            position[None, None, :] >= start[:, :, None],
            position[None, None, :] < (start + width)[:, :, None],
        )  # (B, n, length)
        return keras.ops.any(inside, axis=1)  # (B, length)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            freq_masks=self.freq_masks,
            freq_mask_width=self.freq_mask_width,
            time_masks=self.time_masks,
            time_mask_fraction=self.time_mask_fraction,
            mask_value=self.mask_value,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="sensorium")
class UtteranceNormalization(keras.layers.Layer):
    """Per-utterance normalisation of log-mel features (B, T, F): each bin minus its mean over the
    utterance, divided by the utterance's standard deviation over all its frames and bins.

    This removes what a speaker's vocal tract and a channel add as a constant (a microphone's
    colouring, a telephone band's tilt, the level) and is part of the exported model, so every
    runtime normalises alike. Frames of digital silence (zero padding at the end of a batch, or an
    all-zero stretch) hold ``floor`` in every bin (``log(log_offset)`` of the front end) and are left
    out of the statistics, so padding a batch changes an utterance's statistics only by the one or
    two frames that straddle its end.
    """

    def __init__(self, floor: float = float(np.log(1e-6)), epsilon: float = 1e-3, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.floor = float(floor)
        self.epsilon = float(epsilon)

    def call(self, features):
        x = tf.cast(features, tf.float32)  # (B, T, F)
        live = tf.cast(tf.reduce_max(x, axis=-1, keepdims=True) > self.floor + 1e-3, tf.float32)  # (B, T, 1)
        frames = tf.maximum(tf.reduce_sum(live, axis=1, keepdims=True), 1.0)  # (B, 1, 1)
        mean = tf.reduce_sum(x * live, axis=1, keepdims=True) / frames  # (B, 1, F)
        centred = x - mean  # (B, T, F)
        bins = tf.cast(tf.shape(x)[-1], tf.float32)
        variance = tf.reduce_sum(tf.square(centred) * live, axis=(1, 2), keepdims=True) / (frames * bins)  # (B, 1, 1)
        return centred * tf.math.rsqrt(variance + self.epsilon)  # (B, T, F); silent frames stay far below 0

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(floor=self.floor, epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="sensorium")
class FrequencyWarp(keras.layers.Layer):
    """Vocal-tract-length perturbation on (B, T, F) features, only with ``training=True``.

    Each example's frequency axis is stretched by a factor a ~ U[1 - max_warp, 1 + max_warp]: bin f
    takes the (linearly interpolated) value at f * a below a boundary at 80 % of the band, and a
    straight line above it joins that to the top bin, so no content leaves the band (Jaitly & Hinton,
    2013). A longer or shorter vocal tract moves every formant by one factor, which is what this
    imitates. The identity at inference: nothing of it is in an exported model.
    """

    def __init__(self, max_warp: float = 0.1, boundary: float = 0.8, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_warp = float(max_warp)
        self.boundary = float(boundary)
        if not 0.0 <= self.max_warp < 0.5:
            raise ValueError(f"max_warp must be in [0, 0.5), got {max_warp}")
        if not 0.0 < self.boundary < 1.0:
            raise ValueError(f"boundary must be in (0, 1), got {boundary}")
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, features, training: bool | None = None):
        if not training or self.max_warp == 0.0:
            return features
        shape = tf.shape(features)
        batch, bins = shape[0], shape[2]
        top = tf.cast(bins - 1, tf.float32)
        alpha = keras.random.uniform((batch, 1), 1.0 - self.max_warp, 1.0 + self.max_warp,
                                     seed=self.seed_generator)  # (B, 1)
        f = tf.cast(tf.range(bins), tf.float32)[None, :]  # (1, F)
        edge = self.boundary * top / tf.maximum(alpha, 1.0)  # (B, 1): below it, f -> f * alpha
        low = f * alpha
        high = edge * alpha + (f - edge) * (top - edge * alpha) / tf.maximum(top - edge, 1e-6)
        source = tf.clip_by_value(tf.where(f <= edge, low, high), 0.0, top)  # (B, F)
        below = tf.floor(source)
        frac = (source - below)[:, None, :]  # (B, 1, F)
        lo = tf.cast(below, tf.int32)
        hi = tf.minimum(lo + 1, bins - 1)
        x = tf.transpose(tf.cast(features, tf.float32), (0, 2, 1))  # (B, F, T)
        warped = (tf.gather(x, lo, batch_dims=1, axis=1) * tf.transpose(1.0 - frac, (0, 2, 1))
                  + tf.gather(x, hi, batch_dims=1, axis=1) * tf.transpose(frac, (0, 2, 1)))  # (B, F, T)
        return tf.cast(tf.transpose(warped, (0, 2, 1)), features.dtype)  # (B, T, F)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(max_warp=self.max_warp, boundary=self.boundary, seed=self.seed)
        return config
