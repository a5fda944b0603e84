"""Acoustic augmentation of training utterances, in the input pipeline (the exported model is unchanged).

Each training utterance, every epoch, passes through a random chain of channels
(`sensorium.pipelines.speech.channels`), each lever applied with its own probability:

    vocoder -> speed -> pad -> eq -> reverb -> telephone -> noise (white/pink/brown) or babble (other
    training utterances)

`pad` puts a random stretch of silence before the speech (the noise and babble that come later fill it
like a room's; `pad_seconds` = (most before, most after)), so the model cannot learn where in the clip
speech starts. Without it, a model trained on espeak-ng's clips, which start within 10 ms of the speech,
loses words when the speech starts 20-300 ms in, as flite's and real recordings do. It is on by default,
up to 0.3 s before and none after, for half the utterances: on the engine hold-out that took flite's WER
from 67.4% to 35.1% greedy and from 47.8% to 17.3% with the vocabulary, at a cost of 1.1 / 0.2 points on
the held-out espeak-ng voices. The first setting tried (up to 0.5 s before and after, 70%) cost those
voices 16 / 7 points (README, speech ablation).

Levers are named in `SpeechAugmentConfig.levers`, so an ablation switches one off by leaving it out.
`vocoder` (LPC resynthesis with a new voice source and shifted pitch) is opt-in (`--augment
vocoder,speed,...`): it measured no gain; the others are on by default.
Everything random is drawn from the generator it is given (the training loop seeds one per epoch).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sensorium.pipelines.speech import channels

LEVERS: tuple[str, ...] = ("vocoder", "speed", "pad", "eq", "reverb", "telephone", "noise", "babble")
DEFAULT_LEVERS: tuple[str, ...] = ("speed", "pad", "eq", "reverb", "telephone", "noise", "babble")
NOISE_COLOURS = ("white", "pink", "brown")


@dataclass
class SpeechAugmentConfig:
    """Which acoustic levers run in training, and how often and how hard (probabilities per utterance)."""

    levers: list[str] = field(default_factory=lambda: list(DEFAULT_LEVERS))
    vocoder_p: float = 0.4
    vocoder_pitch_range: tuple[float, float] = (0.75, 1.3)  # the new source's pitch, times the estimate
    vocoder_breath_range: tuple[float, float] = (0.0, 0.4)  # noise mixed into voiced frames
    vocoder_order_range: tuple[int, int] = (12, 20)  # LPC order
    speed_range: tuple[float, float] = (0.85, 1.15)
    speed_p: float = 0.6
    pad_p: float = 0.5
    pad_seconds: tuple[float, float] = (0.3, 0.0)  # the most silence added before and after (each drawn from 0)
    eq_p: float = 0.5
    reverb_p: float = 0.3
    rt60_range: tuple[float, float] = (0.15, 0.8)
    telephone_p: float = 0.15
    noise_p: float = 0.5  # the chance of noise or babble (babble takes babble_share of those)
    babble_share: float = 0.4
    snr_range: tuple[float, float] = (0.0, 30.0)
    babble_talkers: tuple[int, int] = (2, 6)

    def checks(self) -> list[tuple[bool, str]]:
        unknown = sorted(set(self.levers) - set(LEVERS))
        probabilities = ("vocoder_p", "speed_p", "pad_p", "eq_p", "reverb_p", "telephone_p", "noise_p", "babble_share")
        return [
            (not unknown, f"augment.levers: unknown lever(s) {', '.join(unknown)} (known: {', '.join(LEVERS)})"),
            (all(0.0 <= getattr(self, k) <= 1.0 for k in probabilities), "augment probabilities must be in [0, 1]"),
            (0.5 <= self.speed_range[0] <= self.speed_range[1] <= 2.0, "augment.speed_range must be within 0.5..2"),
            (0.5 <= self.vocoder_pitch_range[0] <= self.vocoder_pitch_range[1] <= 2.0,
             "augment.vocoder_pitch_range must be within 0.5..2"),
            (0.0 <= self.vocoder_breath_range[0] <= self.vocoder_breath_range[1] <= 1.0,
             "augment.vocoder_breath_range must be within 0..1"),
            (4 <= self.vocoder_order_range[0] <= self.vocoder_order_range[1] <= 40,
             "augment.vocoder_order_range must be within 4..40"),
            (all(0.0 <= x <= 5.0 for x in self.pad_seconds) and len(self.pad_seconds) == 2,
             "augment.pad_seconds must be two lengths within 0..5 s (before, after)"),
            (0.05 <= self.rt60_range[0] <= self.rt60_range[1] <= 3.0, "augment.rt60_range must be within 0.05..3 s"),
            (self.snr_range[0] <= self.snr_range[1], "augment.snr_range is empty"),
            (1 <= self.babble_talkers[0] <= self.babble_talkers[1], "augment.babble_talkers must be 1 <= lo <= hi"),
        ]


class Augmenter:
    """`augmenter(wave, rng, min_samples) -> wave`: one random channel chain for a 16 kHz utterance.

    `pool` holds the training utterances that babble is made of. `min_samples` is the shortest the
    result may be (CTC needs enough frames for the transcript): a speed-up that would go below it
    is not applied.
    """

    def __init__(self, config: SpeechAugmentConfig, pool: Sequence[np.ndarray] = ()) -> None:
        self.config = config
        self.levers = frozenset(config.levers)
        self.pool = pool

    def __bool__(self) -> bool:
        return bool(self.levers)

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, min_samples: int = 0) -> np.ndarray:
        cfg, on = self.config, self.levers
        out = np.asarray(wave, np.float32)
        if "vocoder" in on and rng.random() < cfg.vocoder_p:
            out = channels.vocoder(out, rng, order=int(rng.integers(cfg.vocoder_order_range[0],
                                                                    cfg.vocoder_order_range[1] + 1)),
                                   pitch_factor=float(rng.uniform(*cfg.vocoder_pitch_range)),
                                   breath=float(rng.uniform(*cfg.vocoder_breath_range)))
        if "speed" in on and rng.random() < cfg.speed_p:
            factor = float(rng.uniform(*cfg.speed_range))
            if out.size / factor >= min_samples:
                out = channels.speed(out, factor)
        if "pad" in on and rng.random() < cfg.pad_p:
            before, after = (int(rng.uniform(0.0, seconds) * channels.RATE) for seconds in cfg.pad_seconds)
            out = np.pad(out, (before, after))
        if "eq" in on and rng.random() < cfg.eq_p:
            out = channels.equalize(out, rng)
        if "reverb" in on and rng.random() < cfg.reverb_p:
            rir = channels.room_impulse_response(rng, float(rng.uniform(*cfg.rt60_range)),
                                                 direct_to_reverb_db=float(rng.uniform(-3.0, 10.0)))
            out = channels.reverberate(out, rir)
        if "telephone" in on and rng.random() < cfg.telephone_p:
            out = channels.telephone(out, codec=bool(rng.random() < 0.7))
        noisy = [lever for lever in ("noise", "babble") if lever in on and (lever != "babble" or len(self.pool) > 1)]
        if noisy and rng.random() < cfg.noise_p:
            snr = float(rng.uniform(*cfg.snr_range))
            use_babble = "babble" in noisy and (noisy == ["babble"] or rng.random() < cfg.babble_share)
            if use_babble:
                count = int(rng.integers(cfg.babble_talkers[0], cfg.babble_talkers[1] + 1))
                talkers = [self.pool[int(i)] for i in rng.integers(len(self.pool), size=count)]
                noise = channels.babble(out.size, talkers, rng)
            else:
                noise = channels.colored_noise(out.size, rng, NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))])
            out = channels.mix(out, noise, snr)
        return channels.peak_limit(out * np.float32(rng.uniform(0.3, 1.0)))  # a level the model must not care for


__all__ = ["DEFAULT_LEVERS", "Augmenter", "LEVERS", "SpeechAugmentConfig"]
