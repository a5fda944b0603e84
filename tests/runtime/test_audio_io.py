"""Audio decoding: formats, rates, channels, windows and one-line errors for bad files."""
from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sensorium.runtime import audio_io as audio
from sensorium.runtime.audio_io import audio_duration, decode_audio_bytes, load_audio
from sensorium.runtime.errors import DataError, MissingExtraError

SR = 16000


def _tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_hz(y: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spectrum) * rate / y.size)


def _amplitude_at(y: np.ndarray, freq: float, rate: int = SR) -> float:
    """Amplitude of the sinusoid at ``freq`` (Hann-windowed DFT peak, scaled back)."""
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    k = int(round(freq * y.size / rate))
    return float(spectrum[k - 2 : k + 3].max() * 2 / np.hanning(y.size).sum())


def _assert_clean(y: np.ndarray) -> None:
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0


def test_wav_44k_stereo_int16_to_16k_mono(tmp_path):
    # Left 440 Hz at 0.6, right 1 kHz at 0.2: averaging halves both.
    left, right = _tone(440, 44100, 1.5, 0.6), _tone(1000, 44100, 1.5, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_16")
    y = load_audio(path)
    _assert_clean(y)
    assert abs(y.size - 1.5 * SR) <= 1
    assert _dominant_hz(y) == pytest.approx(440, abs=1.0)
    assert _amplitude_at(y, 440) == pytest.approx(0.3, abs=0.01)
    assert _amplitude_at(y, 1000) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize(
    "filename, rate, channels, subtype",
    [
        ("tone.flac", 48000, 1, "PCM_24"),
        ("tone.flac", 22050, 2, "PCM_16"),
        ("tone.ogg", 44100, 2, "VORBIS"),
        ("tone.ogg", 48000, 1, "OPUS"),
        ("tone.wav", 8000, 1, "PCM_32"),  # int32 PCM, upsampled
        ("tone.wav", 16000, 3, "FLOAT"),  # float PCM, three channels, no resampling
    ],
)
def test_formats_rates_and_channels(tmp_path, filename, rate, channels, subtype):
    if subtype not in sf.available_subtypes(Path(filename).suffix[1:].upper()):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {subtype}")
    wave = _tone(440, rate, 1.0)
    path = tmp_path / filename
    sf.write(path, np.repeat(wave[:, None], channels, axis=1), rate, subtype=subtype)
    y = load_audio(path)
    _assert_clean(y)
    assert abs(y.size - SR) <= 1
    assert _dominant_hz(y) == pytest.approx(440, abs=1.0)
    assert _amplitude_at(y, 440) == pytest.approx(0.5, abs=0.03)  # lossy codecs move it a little
    assert audio_duration(path) == pytest.approx(1.0, abs=1e-3)


def test_mp3(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no MP3 support (needs >= 1.1)")
    path = tmp_path / "tone.mp3"
    sf.write(path, _tone(440, 44100, 2.0), 44100, format="MP3")
    y = load_audio(path)
    _assert_clean(y)
    assert abs(y.size - 2 * SR) <= 1
    assert _dominant_hz(y) == pytest.approx(440, abs=1.0)
    np.testing.assert_array_equal(decode_audio_bytes(path.read_bytes(), name="tone.mp3"), y)


def test_audioread_fallback_for_formats_libsndfile_lacks(tmp_path, monkeypatch):
    """When libsndfile does not know an .mp3/.m4a file, audioread decodes it (here: its raw backend)."""
    pytest.importorskip("audioread")
    wav = tmp_path / "tone.wav"
    sf.write(wav, np.stack([_tone(440, 22050, 1.0)] * 2, axis=1), 22050, subtype="PCM_16")
    expected = load_audio(wav)
    disguised = tmp_path / "tone.mp3"
    shutil.copy(wav, disguised)

    def libsndfile_lacks_it(fp, name):
        raise audio._NotForSoundfile

    monkeypatch.setattr(audio, "_open_soundfile", libsndfile_lacks_it)
    np.testing.assert_allclose(load_audio(disguised), expected, atol=1e-6)
    np.testing.assert_allclose(decode_audio_bytes(disguised.read_bytes(), name="up.mp3"), expected, atol=1e-6)
    assert audio_duration(disguised) == pytest.approx(1.0)
    assert load_audio(disguised, offset_seconds=0.5).size == SR // 2
    with pytest.raises(DataError, match="over the limit"):
        load_audio(disguised, max_seconds=0.5)


def test_missing_resampler_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(440, 44100, 1.0), 44100, subtype="PCM_16")
    monkeypatch.setitem(sys.modules, "soxr", None)  # `import soxr` now raises ImportError
    with pytest.raises(MissingExtraError, match="needs soxr: pip install soxr"):
        load_audio(path)
    sf.write(path, _tone(440, SR, 1.0), SR, subtype="PCM_16")
    assert load_audio(path).size == SR  # the model's own rate needs no resampler


def test_silence_is_valid_and_same_rate_is_untouched(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(8000, np.int16), SR, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path), np.zeros(8000, np.float32))
    noise = np.random.default_rng(0).uniform(-0.9, 0.9, 4000).astype(np.float32)
    sf.write(path, noise, SR, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), noise)


def test_float_beyond_full_scale_is_clipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "hot.wav"
    sf.write(path, _tone(440, SR, 0.5, amplitude=1.5), SR, subtype="FLOAT")
    with caplog.at_level(logging.WARNING, logger="sensorium.runtime.audio_io"):
        y = load_audio(path)
    assert np.abs(y).max() == 1.0
    assert "beyond full scale" in caplog.text and "hot.wav" in caplog.text


def test_bytes_match_file(tmp_path):
    path = tmp_path / "tone.flac"
    sf.write(path, _tone(300, 32000, 0.7), 32000)
    np.testing.assert_array_equal(decode_audio_bytes(path.read_bytes()), load_audio(path))


def test_sample_rate_argument(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(440, 44100, 1.0), 44100)
    y = load_audio(path, sample_rate=8000)
    assert abs(y.size - 8000) <= 1 and _dominant_hz(y, 8000) == pytest.approx(440, abs=1.0)
    with pytest.raises(ValueError):
        load_audio(path, sample_rate=0)


def test_duration_and_windows_without_decoding_everything(tmp_path, monkeypatch):
    # Three seconds: 440 Hz, then 880 Hz, then 1320 Hz.
    path = tmp_path / "steps.wav"
    sf.write(path, np.concatenate([_tone(f, 44100, 1.0) for f in (440, 880, 1320)]), 44100, subtype="PCM_16")
    middle = load_audio(path, offset_seconds=1.0, duration_seconds=1.0)
    assert abs(middle.size - SR) <= 1 and _dominant_hz(middle[200:-200]) == pytest.approx(880, abs=1.5)
    tail = load_audio(path, offset_seconds=2.5)
    assert abs(tail.size - SR // 2) <= 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("samples were decoded")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    assert audio_duration(path) == pytest.approx(3.0)
    with pytest.raises(DataError) as err:  # rejected from the header, before reading any sample
        load_audio(path, max_seconds=2.0)
    assert str(err.value) == (
        f"{path}: audio is 3.00 s long, over the limit of 2.00 s; split it into shorter clips"
    )
    with pytest.raises(DataError, match="past the end"):
        load_audio(path, offset_seconds=3.5)


def _bad_file(kind: str, tmp_path: Path) -> tuple[Path, dict]:
    """A broken input of the given kind, and extra load_audio arguments."""
    path = tmp_path / {"corrupt_flac": "bad.flac", "folder": "clips"}.get(kind, "bad.wav")
    if kind == "text":
        path.write_text("this is not audio\n" * 20)
    elif kind == "truncated_header":
        sf.write(tmp_path / "good.wav", _tone(440, SR, 1.0), SR, subtype="PCM_16")
        path.write_bytes((tmp_path / "good.wav").read_bytes()[:30])
    elif kind == "zero_samples":
        sf.write(path, np.zeros((0, 1), np.float32), SR, subtype="PCM_16")
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "too_long":
        sf.write(path, _tone(440, SR, 2.0), SR, subtype="PCM_16")
        return path, {"max_seconds": 1.5}
    elif kind in ("nan", "inf"):
        wave = _tone(440, SR, 0.5)
        wave[100:103] = np.nan if kind == "nan" else np.inf
        sf.write(path, wave, SR, subtype="FLOAT")
    elif kind == "corrupt_flac":
        sf.write(tmp_path / "good.flac", _tone(440, SR, 1.0), SR)
        data = bytearray((tmp_path / "good.flac").read_bytes())
        for i in range(200, len(data), 7):  # scramble the frames after the header
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
    elif kind == "folder":
        path.mkdir()
    return path, {}


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "no such file"),
        ("text", "not an audio file"),
        ("truncated_header", "corrupt or unsupported audio header"),
        ("zero_samples", "no audio samples"),
        ("zero_bytes", "empty file"),
        ("too_long", "audio is 2.00 s long, over the limit of 1.50 s"),
        ("nan", "3 of 8000 samples are NaN or infinite"),
        ("inf", "NaN or infinite"),
        ("corrupt_flac", "corrupt audio data"),
        ("folder", "is a folder"),
    ],
)
def test_bad_inputs_give_one_line_data_errors(tmp_path, kind, reason):
    path, kwargs = _bad_file(kind, tmp_path)
    with pytest.raises(DataError) as err:
        load_audio(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and reason in message, message
    if path.is_file() and path.stat().st_size:
        with pytest.raises(DataError) as err:
            decode_audio_bytes(path.read_bytes(), name=path.name, **kwargs)
        assert "\n" not in str(err.value) and str(err.value).startswith(f"{path.name}: ")


def test_bad_bytes():
    cases = ((b"", "empty input"), (b"RIFF\x00\x00", "audio"), ("text", "expected encoded audio bytes"))
    for data, reason in cases:
        with pytest.raises(DataError, match=reason) as err:
            decode_audio_bytes(data)
        assert "\n" not in str(err.value) and str(err.value).startswith("<bytes>: ")


def test_audio_duration_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        audio_duration(tmp_path / "nope.wav")
    (tmp_path / "notes.wav").write_text("hello")
    with pytest.raises(DataError, match="not an audio file"):
        audio_duration(tmp_path / "notes.wav")
