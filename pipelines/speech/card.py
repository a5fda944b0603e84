"""The model card of a speech-recognition run (model_card.md in the run directory)."""
from __future__ import annotations

import shlex
import sys
from typing import Any

from sensorium.pipelines.common.reports import write_model_card
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.speech.config import SpeechConfig


def write_card(run: RunDir, cfg: SpeechConfig, summary: dict[str, Any], metrics: dict[str, Any] | None) -> None:
    manifest = run.read_manifest()
    command = manifest.get("command") or " ".join(shlex.quote(a) for a in ["sensorium", *sys.argv[1:]])
    m = cfg.model
    synthetic = cfg.data.spec.startswith("builtin:speech") or "sensorium_speech" in cfg.data.spec
    sections: dict[str, Any] = {
        "Intended use": (
            "Transcribes English speech (16 kHz mono waveforms; other rates and formats are converted "
            "when read) into lower-case words, numbers spelled out. Long recordings are cut at silences "
            "by the transcribe command."),
        "Training data": {
            "data spec": cfg.data.spec,
            "training utterances": summary["train"]["count"], "training hours": summary["train"]["hours"],
            "validation utterances": summary["validation"]["count"],
            "skipped (unreadable, too long or too short)": summary["train"]["skipped"],
            "seed": cfg.seed,
            **({"voices": "SYNTHETIC: espeak-ng and flite speech synthesisers (several voices, rates, pitches "
                          "and noise levels); the test split uses voices never heard in training. Real human "
                          "speech is out of its scope until it is trained on recordings."} if synthetic else {}),
        },
        "Reproduce": f"```\n{command}\n```\nThe resolved configuration is `config.json` "
                     "(`sensorium train speech --config config.json` reruns it).",
        "Model": {
            "front end": f"log-mel, {m.num_mel_bins} bins, {m.frame_length / 16:.0f} ms windows every "
                         f"{m.frame_step / 16:.0f} ms, inside the model (input: float waveform)",
            "encoder": f"{len(m.conv_channels)} stride-2 convolution(s) {list(m.conv_channels)}, then {m.rnn_layers} "
                       f"{'bidirectional ' if m.bidirectional else ''}LSTM layer(s) of {m.rnn_units} units",
            "normalisation": ("per utterance, inside the model (each mel bin minus its mean over the utterance, "
                              "divided by the utterance's standard deviation): removes level, microphone and "
                              "channel colouring" if m.normalization == "utterance"
                              else "the training data's per-bin mean and variance, inside the model"),
            "output": "characters (space, apostrophe, a-z) + CTC blank",
            "augmentation in the model (training only)": ", ".join(
                part for part in (f"vocal-tract-length warp +-{m.freq_warp:g}" if m.freq_warp else "",
                                  f"SpecAugment {m.spec_augment}" if m.spec_augment else "") if part) or "none",
            "augmentation of the audio (training only)": _levers(cfg),
            "decoding vocabulary": "the words of its training transcripts (`transcribe` spells only these unless "
                                   "given `--vocabulary FILE` or `--vocabulary none`)",
            "language model": "a Kneser-Ney word n-gram model of the same transcripts, weighing the words of "
                              "vocabulary decoding (`--lm FILE|none`, `--lm-weight W`)",
        },
        "Training": {
            "optimizer": f"{cfg.train.optimizer}, peak learning rate {cfg.train.learning_rate}, {cfg.train.schedule} "
                         f"schedule, gradient clip norm {cfg.train.clipnorm}",
            "batch size": cfg.train.batch_size, "epochs run": summary["epochs"],
            "stopped early": summary["stopped_early"],
        },
    }
    if metrics is not None:
        r = metrics["metrics"]
        sections["Evaluation"] = {
            "data": f"{metrics['data']} ({metrics['count']} utterances, {r['hours']} h)",
            "WER": f"{r['wer']:.4f}", "CER": f"{r['cer']:.4f}",
            "utterances exactly right": f"{r['sentence_accuracy']:.4f}",
            "decoding": r.get("decoding") or ("greedy" if r["beam"] <= 1 else f"beam search, width {r['beam']}"),
        }
        if r.get("without_lm"):
            sections["Evaluation"]["WER, vocabulary without the language model"] = f"{r['without_lm']['wer']:.4f}"
        if r.get("open_vocabulary"):
            sections["Evaluation"]["WER, open vocabulary (greedy)"] = f"{r['open_vocabulary']['wer']:.4f}"
    sections["Limitations"] = [
        "The language model knows only the training transcripts: it favours their word sequences, and a "
        "user's own sentences need `--lm FILE`.",
        "Error rates are measured on a split of the same source as the training data.",
    ]
    write_model_card(run.card_path, title=f"Speech recogniser: {run.path.name}", task="speech", sections=sections)


def _levers(cfg: SpeechConfig) -> str:
    a = cfg.augment
    described = {
        "vocoder": f"LPC vocoder resynthesis, pitch x{a.vocoder_pitch_range[0]:g}-{a.vocoder_pitch_range[1]:g} "
                   f"(p {a.vocoder_p:g})",
        "speed": f"speed {a.speed_range[0]:g}-{a.speed_range[1]:g}x (p {a.speed_p:g})",
        "pad": f"silence before and after, up to {a.pad_seconds[0]:g} / {a.pad_seconds[1]:g} s (p {a.pad_p:g})",
        "eq": f"random EQ and tilt (p {a.eq_p:g})",
        "reverb": f"synthetic rooms, RT60 {a.rt60_range[0]:g}-{a.rt60_range[1]:g} s (p {a.reverb_p:g})",
        "telephone": f"8 kHz telephone band with mu-law (p {a.telephone_p:g})",
        "noise": f"white/pink/brown noise at {a.snr_range[0]:g}-{a.snr_range[1]:g} dB SNR",
        "babble": "babble of 2-6 other training utterances",
    }
    levers = [described[lever] for lever in a.levers if lever in described]
    if not levers:
        return "none"
    return "; ".join(levers) + (f" (noise or babble: p {a.noise_p:g})" if {"noise", "babble"} & set(a.levers) else "")
