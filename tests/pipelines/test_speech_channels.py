"""Acoustic channels, training augmentation and the deterministic test conditions: each does what
its name says to the spectrum and the level, is reproducible from its seed, and keeps CTC feasible."""
from __future__ import annotations

import numpy as np
import pytest

from sensorium.pipelines.speech import channels
from sensorium.pipelines.speech.augment import LEVERS, Augmenter, SpeechAugmentConfig
from sensorium.pipelines.speech.conditions import CONDITIONS
from sensorium.runtime.segment import speech_end, trailing_quiet

RATE = 16000


def _speechlike(seconds=1.0, seed=0):
    """A harmonic buzz (120 Hz and its harmonics up to 7 kHz) with a syllable-rate envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 58))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    return (0.3 * wave / np.abs(wave).max() * envelope + noise).astype(np.float32)


def _band_energy(wave, lo, hi):
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(wave.size, 1 / RATE)
    return spectrum[(freqs >= lo) & (freqs < hi)].sum() / spectrum.sum()


def test_speed_changes_length_and_pitch():
    wave = _speechlike()
    fast = channels.speed(wave, 1.25)
    assert abs(fast.size - wave.size / 1.25) <= 2
    peak = np.fft.rfftfreq(fast.size, 1 / RATE)[np.argmax(np.abs(np.fft.rfft(fast)))]
    assert peak == pytest.approx(150, abs=3)  # the 120 Hz fundamental moves up by the factor
    with pytest.raises(ValueError):
        channels.speed(wave, 3.0)


def test_telephone_keeps_the_band_and_is_deterministic():
    wave = _speechlike()
    phone = channels.telephone(wave)
    assert phone.size == wave.size
    assert _band_energy(wave, 4000, 8000) > 0.01 and _band_energy(phone, 4000, 8000) < 1e-4
    assert _band_energy(phone, 0, 200) < 0.02
    np.testing.assert_array_equal(phone, channels.telephone(wave))
    x = np.linspace(-1, 1, 1001)
    error = np.abs(channels.mu_law(x) - x)
    assert error.max() < 0.025 and error[np.abs(x) < 0.01].max() < 0.001  # 8-bit mu-law: fine near 0 only


def test_reverb_smears_in_time_at_the_same_level():
    rng = np.random.default_rng(1)
    rir = channels.room_impulse_response(rng, 0.6)
    assert rir[0] == 1.0 and 0.6 * RATE <= rir.size <= 0.8 * RATE
    click = np.zeros(RATE, np.float32)
    click[100] = 1.0
    wet = channels.reverberate(click, rir)
    tail = np.abs(wet[100 + int(0.1 * RATE):]).sum() / np.abs(wet).sum()
    assert tail > 0.05  # energy 100 ms after the click: a room
    wave = _speechlike()
    out = channels.reverberate(wave, rir)
    assert out.size == wave.size and np.sqrt(np.mean(out ** 2)) == pytest.approx(np.sqrt(np.mean(wave ** 2)), rel=1e-3)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0])
def test_mix_hits_the_signal_to_noise_ratio(snr):
    rng = np.random.default_rng(2)
    wave = _speechlike()
    noise = channels.colored_noise(wave.size, rng, "pink")
    mixed = channels.mix(wave, noise, snr)
    measured = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((mixed - wave).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=0.01)


def test_babble_is_talkers_at_unit_level():
    rng = np.random.default_rng(3)
    talkers = [_speechlike(0.4, seed=i) for i in range(4)]
    out = channels.babble(RATE, talkers, rng)
    assert out.size == RATE and np.sqrt(np.mean(out ** 2)) == pytest.approx(1.0, rel=1e-4)
    assert not np.any(channels.babble(100, [np.zeros(50, np.float32)], rng))


def test_equalize_colours_the_spectrum():
    wave = _speechlike()
    rng = np.random.default_rng(4)
    changes = []
    for _ in range(5):
        out = channels.equalize(wave, rng)
        changes.append(abs(np.log(_band_energy(out, 2000, 8000) / _band_energy(wave, 2000, 8000))))
    assert max(changes) > 0.3  # at least one curve moves the high band by more than ~1.3 dB


def test_augmenter_is_reproducible_bounded_and_respects_ctc_length():
    pool = [_speechlike(0.5, seed=i) for i in range(6)]
    config = SpeechAugmentConfig(levers=list(LEVERS), vocoder_p=1.0, speed_p=1.0, eq_p=1.0, reverb_p=1.0,
                                 telephone_p=1.0, noise_p=1.0)
    augment = Augmenter(config, pool)
    wave = _speechlike()
    a = augment(wave, np.random.default_rng(5))
    b = augment(wave, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= 0.99 and np.all(np.isfinite(a))
    assert not np.array_equal(a, augment(wave, np.random.default_rng(6)))
    rng = np.random.default_rng(7)
    for _ in range(20):  # speed-ups never cut below the least length CTC needs
        assert augment(wave, rng, min_samples=wave.size).size >= wave.size
    quiet = Augmenter(SpeechAugmentConfig(levers=[]), pool)
    assert not quiet
    out = quiet(wave, np.random.default_rng(0))
    assert np.allclose(out / np.abs(out).max(), wave / np.abs(wave).max(), atol=1e-6)  # only the level changes


def test_augment_config_checks():
    assert all(ok for ok, _ in SpeechAugmentConfig().checks())
    problems = [msg for ok, msg in SpeechAugmentConfig(levers=["speed", "echo"], speed_p=1.5).checks() if not ok]
    assert any("echo" in m for m in problems) and any("probabilities" in m for m in problems)
    assert set(LEVERS) == {"vocoder", "speed", "pad", "eq", "reverb", "telephone", "noise", "babble"}
    assert "pad" in SpeechAugmentConfig().levers and SpeechAugmentConfig().pad_seconds[1] == 0.0  # lead only
    assert any("pad_seconds" in msg for ok, msg in SpeechAugmentConfig(pad_seconds=(0.5, 9.0)).checks() if not ok)
    assert "vocoder" not in SpeechAugmentConfig().levers  # opt-in until measured
    bad = SpeechAugmentConfig(levers=["vocoder"], vocoder_pitch_range=(0.2, 3.0), vocoder_order_range=(2, 50))
    assert sum("vocoder" in msg for ok, msg in bad.checks() if not ok) == 2


def test_vocoder_keeps_the_envelope_replaces_the_source_and_can_shift_pitch():
    wave = _speechlike(1.0)
    out = channels.vocoder(wave, np.random.default_rng(0))
    assert out.size == wave.size and np.all(np.isfinite(out)) and np.abs(out).max() <= 0.99
    assert np.sqrt(np.mean(out ** 2)) == pytest.approx(np.sqrt(np.mean(wave ** 2)), rel=0.05)  # same level

    def f0(x):  # the strongest periodicity between 60 and 400 Hz, by autocorrelation
        x = x[4000:12000] - x[4000:12000].mean()
        r = np.correlate(x, x, "full")[x.size - 1:]
        lag = int(np.argmax(r[40:267])) + 40
        return RATE / lag

    assert f0(out) == pytest.approx(120, rel=0.05)  # voiced: pulses at the estimated pitch
    shifted = channels.vocoder(wave, np.random.default_rng(0), pitch_factor=1.25)
    assert f0(shifted) == pytest.approx(150, rel=0.06)  # pitch moves, length does not
    assert shifted.size == wave.size

    def envelope(x):  # coarse spectral envelope: energy share in 8 bands up to 8 kHz
        return np.array([_band_energy(x, lo, lo + 1000) for lo in range(0, 8000, 1000)])

    assert np.abs(envelope(out) - envelope(wave)).sum() < 0.25  # the envelope survives resynthesis
    noise = np.random.default_rng(3).normal(0, 0.1, RATE).astype(np.float32)
    np.testing.assert_array_equal(channels.vocoder(noise, np.random.default_rng(1)),
                                  channels.vocoder(noise, np.random.default_rng(1)))  # seeded: reproducible
    assert np.array_equal(channels.vocoder(np.zeros(RATE, np.float32), np.random.default_rng(0)),
                          np.zeros(RATE, np.float32))  # silence stays silence
    short = wave[:100]
    assert np.array_equal(channels.vocoder(short, np.random.default_rng(0)), short)  # shorter than a frame


def test_augmented_batches_follow_the_new_lengths():
    from sensorium.models.speech import SpeechRecognizerSpec, output_frames
    from sensorium.pipelines.speech.data import SpeechSplit

    spec = SpeechRecognizerSpec()
    waves = [_speechlike(0.6 + 0.1 * i, seed=i) for i in range(8)]
    split = SpeechSplit("train", waves, ["one two"] * 8, [f"u{i}" for i in range(8)])
    augment = Augmenter(SpeechAugmentConfig(levers=["speed"], speed_p=1.0, speed_range=(0.7, 1.4)))
    lengths = []
    for x, y in split.batches(4, split.targets(spec), order_seed=[0, 1], augment=augment, spec=spec):
        for row, target in zip(x, y):
            length = np.max(np.nonzero(row)[0]) + 1
            lengths.append(length)
            assert output_frames(spec, length) - 1 <= target[0] <= output_frames(spec, length)
    assert len(lengths) == 8
    assert sum(abs(n - len(w)) > 100 for n in lengths for w in waves) == 8 * len(waves)  # every one re-timed


def test_conditions_are_deterministic_and_readable(tmp_path):
    import soundfile as sf

    from sensorium.pipelines.speech.conditions import main, write_conditions
    from sensorium.runtime.errors import DataError

    rng = np.random.default_rng(0)
    rows = ["path,transcript"]
    for i in range(4):
        sf.write(tmp_path / f"u{i}.wav", _speechlike(0.5 + 0.1 * i, seed=i) * rng.uniform(0.5, 1), RATE)
        rows.append(f"u{i}.wav,one two")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    first = write_conditions(f"{tmp_path / 'm.csv'}@all", tmp_path / "a")
    write_conditions(f"{tmp_path / 'm.csv'}@all", tmp_path / "b")
    assert set(first) == {"reverb", "telephone", "babble10", "pink10", "lead", "trimmed"}
    for name, manifest in first.items():
        lines = manifest.read_text().splitlines()
        assert lines[0] == "path,transcript" and len(lines) == 5
        for line in lines[1:]:
            file = line.split(",")[0]
            assert (tmp_path / "a" / name / file).read_bytes() == (tmp_path / "b" / name / file).read_bytes()
    original, _ = sf.read(tmp_path / "u0.wav", dtype="float32")
    pink, _ = sf.read(tmp_path / "a" / "pink10" / "00000.flac", dtype="float32")
    snr = 10 * np.log10(np.mean(original ** 2) / np.mean((pink - original) ** 2))
    assert snr == pytest.approx(10.0, abs=0.3)  # 16-bit FLAC rounding aside
    lead, _ = sf.read(tmp_path / "a" / "lead" / "00000.flac", dtype="float32")
    extra = lead.size - original.size  # 0.2-1.0 s before, 0.2-0.5 s after
    assert 0.4 * RATE <= extra <= 1.5 * RATE
    loud = np.flatnonzero(np.abs(lead) > 0.1 * np.abs(original).max())
    before, after = loud[0], lead.size - 1 - loud[-1]
    assert 0.2 * RATE <= before <= 1.0 * RATE + 0.05 * RATE and after >= 0.2 * RATE - 0.05 * RATE
    room = lead[: before - 160]
    level = 10 * np.log10(np.mean(original ** 2) / np.mean(room ** 2))
    assert level == pytest.approx(40.0, abs=3.0)  # quiet room noise, not digital silence
    for i in range(4):
        source, _ = sf.read(tmp_path / f"u{i}.wav", dtype="float32")
        trimmed, _ = sf.read(tmp_path / "a" / "trimmed" / f"{i:05d}.flac", dtype="float32")
        np.testing.assert_allclose(trimmed, source[: trimmed.size], atol=1e-4)  # the clip's start, unchanged
        assert trimmed.size >= speech_end(source, RATE) and trailing_quiet(trimmed, RATE) <= 0.05 + 1e-3
    ending = np.concatenate([_speechlike(0.6), np.zeros(int(0.4 * RATE), np.float32)])  # 0.4 s of quiet after
    kept = [CONDITIONS["trimmed"](ending, i, []).size - speech_end(ending, RATE) for i in range(8)]
    assert all(0 <= k <= 0.05 * RATE for k in kept) and len(set(kept)) > 1  # 0-50 ms of it, drawn per utterance
    with pytest.raises(DataError, match="unknown condition"):
        write_conditions(f"{tmp_path / 'm.csv'}@all", tmp_path / "c", ["thunder"])
    assert main(["--data", f"{tmp_path / 'm.csv'}@all", "--out", str(tmp_path / "d"), "--conditions", "thunder"]) == 1


def test_pad_puts_silence_around_the_speech():
    """The pad lever moves the speech within the clip: 0 to pad_seconds of silence before and after,
    the speech itself unchanged (up to the level), seeded."""
    wave = _speechlike(0.8)
    augment = Augmenter(SpeechAugmentConfig(levers=["pad"], pad_p=1.0, pad_seconds=(0.5, 0.3)))
    rng = np.random.default_rng(0)
    leads = []
    for _ in range(30):
        out = augment(wave, rng)
        loud = np.flatnonzero(np.abs(out) > 1e-6)
        lead, tail = loud[0], out.size - 1 - loud[-1]
        assert 0 <= lead <= 0.5 * RATE and 0 <= tail <= 0.3 * RATE + 1
        assert out.size == wave.size + lead + tail  # the buzz is never silent: all that was added is silence
        core = out[lead : lead + wave.size]
        np.testing.assert_allclose(core / np.abs(core).max(), wave / np.abs(wave).max(), atol=1e-5)
        leads.append(lead)
    assert np.std(leads) > 0.1 * RATE  # spread over the range, not one fixed shift
    np.testing.assert_array_equal(augment(wave, np.random.default_rng(3)), augment(wave, np.random.default_rng(3)))
    never = Augmenter(SpeechAugmentConfig(levers=["pad"], pad_p=0.0))
    assert never(wave, np.random.default_rng(0)).size == wave.size
