"""The model card of a translation run (model_card.md in the run directory)."""
from __future__ import annotations

import shlex
import sys
from typing import Any

from sensorium.pipelines.common.reports import write_model_card
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.translation.config import TranslationConfig


def write_card(run: RunDir, cfg: TranslationConfig, summary: dict[str, Any], metrics: dict[str, Any] | None) -> None:
    manifest = run.read_manifest()
    command = manifest.get("command") or " ".join(shlex.quote(a) for a in ["sensorium", *sys.argv[1:]])
    m, t = cfg.model, cfg.train
    vocab = summary["vocab_size"]
    sections: dict[str, Any] = {
        "Intended use": (
            "Translates short texts of the training data's kind (the bundled model: English user-interface "
            "strings into German). Placeholders (%(name)s, %s, {0}, {name}) and HTML tags are protected: they "
            "come out exactly as they went in. A text of several sentences is translated a sentence at a time "
            f"and rejoined (`translate --split sentences`, the default); each source is read up to "
            f"{m.max_source_length - 1} subword tokens. Text of another language or domain is outside its scope."),
        "Training data": {"data spec": cfg.data.spec, "training pairs": summary["train"]["pairs"],
                          "left out (placeholders differ between the sides)":
                              summary["train"]["placeholder_mismatches_left_out"],
                          "validation pairs": summary["validation"]["pairs"], "seed": cfg.seed},
        "Reproduce": f"```\n{command}\n```\n{_resumes(manifest, summary)}The resolved configuration is `config.json`.",
        "Model": {
            "architecture": f"Transformer encoder-decoder, {m.encoder_layers}+{m.decoder_layers} layers, width "
                            f"{m.embed_dim}, {m.num_heads} heads, feed-forward {m.ff_dim}, dropout {m.dropout}",
            "tokenizer": (f"one SentencePiece BPE vocabulary of {vocab['source']} pieces for both languages"
                          if vocab["shared"] else f"SentencePiece BPE, {vocab['source']} source and "
                          f"{vocab['target']} target pieces") + ", placeholders as single symbols <ph0>...<ph15>",
            "parameters": f"{summary['parameters']:,}",
        },
        "Training": {
            "optimizer": f"{t.optimizer}, peak learning rate {t.learning_rate}, {t.warmup_epochs} warm-up epoch(s), "
                         f"{t.schedule} schedule, clipnorm {t.clipnorm}, label smoothing {t.label_smoothing}",
            "batch size": t.batch_size, "epochs run": summary["epochs"],
            "weights kept": f"epoch {summary['best_epoch']} (best {t.monitor})",
        },
    }
    _long_run_rows(sections, summary)
    if "length_penalty" in summary:
        lp = summary["length_penalty"]
        tried = ", ".join(f"{a}: {c:.2f}" for a, c in lp["chrf"].items())
        sections["Training"]["length penalty"] = (f"{lp['chosen']:g}, chosen on {lp['pairs']} validation pairs at beam "
                                                  f"{lp['beam']} (chrF by alpha: {tried})")
    if metrics is not None:
        r = metrics["metrics"]
        sections["Evaluation"] = {
            "data": f"{metrics['data']} ({metrics['count']} pairs), beam {r['beam']}",
            "BLEU": f"{r['bleu']:.2f}", "chrF": f"{r['chrf']:.2f}",
            "placeholders preserved": f"{r['placeholders_preserved']:.1%} of {r['items_with_placeholders']} sources "
                                      "with placeholders",
        }
    sections["Limitations"] = [
        "Scores are measured on held-out messages of the same catalogues; other domains score lower.",
        "UI strings are short and terse; long or conversational text is out of domain.",
    ]
    write_model_card(run.card_path, title=f"Translator: {run.path.name}", task="translation", sections=sections)


def _resumes(manifest: dict[str, Any], summary: dict[str, Any]) -> str:
    """A sentence for a run whose end a resume moved (`--resume --epochs N`), else ''. The schedule it names
    is the one the optimizer ran on: planned when the optimizer was built, which is at the first checkpoint's
    session (a resume before any checkpoint builds it anew, for the epochs it is given)."""
    changes = [c for c in manifest.get("epochs_changed") or [] if isinstance(c, dict)]
    if not changes:
        return ""
    steps = ", then ".join(f"`--resume --epochs {c.get('to')}`" for c in changes)
    sentence = f"It was resumed with {steps}: it stopped after {changes[-1].get('to')} epochs"
    planned, per_epoch = summary.get("schedule_steps"), summary.get("steps_per_epoch")
    if isinstance(planned, int) and isinstance(per_epoch, int) and per_epoch > 0:
        sentence += (f", on a learning-rate schedule planned for {planned:,} steps ({planned / per_epoch:.3g} epochs "
                     f"of {per_epoch:,} steps; an optimizer restored from a checkpoint keeps the plan it was "
                     "compiled with)")
    return sentence + ". "


def _long_run_rows(sections: dict[str, Any], summary: dict[str, Any]) -> None:
    """The rows of a long run (issue 26): extra data, warm start, the stopping rule, averaged weights."""
    train = summary["train"]
    if "extra_spec" in train:
        sections["Training data"]["extra training pairs"] = (
            f"{train['extra_spec']}: a fresh sample of {train['extra_pairs_per_epoch']:,} of its "
            f"{train['extra_pairs']:,} pairs each epoch")
    rows = sections["Training"]
    if summary.get("init_from"):
        rows["warm start"] = f"from {summary['init_from']} (its weights and tokenizer)"
    vc = summary.get("validation_chrf") or {}
    if vc.get("evaluations"):
        start = f"{vc['start']:.2f} at the start, " if "start" in vc else ""
        rows["validation chrF"] = (f"{start}best {vc['best']:.2f}, last {vc['last']:.2f} over {vc['evaluations']} "
                                   f"evaluations (greedy, first {vc['pairs']} validation pairs)")
    if summary.get("stop_reason") is not None:
        rows["stopped"] = f"{summary['stop_reason']} after {summary.get('hours', 0.0):.2f} h"
    if summary.get("averaged_checkpoints"):
        used = summary["averaged_checkpoints"]
        rows["weights kept"] = f"the mean of the last {len(used)} checkpoints ({', '.join(used)})"
