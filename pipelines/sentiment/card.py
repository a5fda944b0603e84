"""The model card of a sentiment run (model_card.md in the run directory)."""
from __future__ import annotations

import shlex
import sys
from typing import Any

from sensorium.pipelines.common.reports import write_model_card
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.sentiment.config import SentimentConfig


def write_card(run: RunDir, cfg: SentimentConfig, summary: dict[str, Any], metrics: dict[str, Any] | None) -> None:
    manifest = run.read_manifest()
    command = manifest.get("command") or " ".join(shlex.quote(a) for a in ["sensorium", *sys.argv[1:]])
    m, t = cfg.model, cfg.train
    labels = list(summary["train"]["per_label"])
    encoder = (f"pretrained TF Hub text encoder {m.encoder[4:]} (strings in), fine-tuned with the head"
               if m.uses_hub else
               f"Transformer encoder trained from scratch: {m.num_layers} layer(s), width {m.embed_dim}, "
               f"{m.num_heads} heads, feed-forward {m.ff_dim}, masked mean pooling")
    pieces = summary.get("long_text_pieces")
    reading = (f"It reads a text of up to {pieces} subword pieces (the training texts' 99th percentile) whole "
               f"and a longer one sentence by sentence, pooling their probabilities; each window holds at most "
               f"{m.max_length - 1} pieces (a longer sentence is cut)." if pieces else
               f"It reads the first {m.max_length - 1} subword tokens of a text (longer texts are cut).")
    sections: dict[str, Any] = {
        "Intended use": (
            f"Labels a text as one of: {', '.join(labels)}. {reading} Texts unlike the training data (other "
            "domains, languages or registers) are outside its scope; sarcasm and mixed sentiment are hard cases."),
        "Training data": {
            "data spec": cfg.data.spec,
            "training texts": summary["train"]["count"],
            "per label": ", ".join(f"{k} {v}" for k, v in summary["train"]["per_label"].items()),
            "validation texts": summary["validation"]["count"],
            "seed": cfg.seed,
        },
        "Reproduce": f"```\n{command}\n```\nThe resolved configuration is `config.json` "
                     "(`sensorium train sentiment --config config.json` reruns it).",
        "Model": {
            "encoder": encoder,
            **({} if m.uses_hub else {
                "tokenizer": f"SentencePiece BPE with byte fallback, {summary['vocab_size']} pieces learned from "
                             "the training texts (tokenizer.model; also inside model.keras)"}),
            "parameters": f"{summary['parameters']:,}",
            "precision policy": summary["precision_policy"],
        },
        "Training": {
            "optimizer": f"{t.optimizer}, peak learning rate {t.learning_rate}, {t.schedule} schedule, "
                         f"clipnorm {t.clipnorm}" + (", inverse-frequency class weights" if t.class_weights else "")
                         + (f", label smoothing {t.label_smoothing}" if t.label_smoothing else ""),
            "batch size": t.batch_size,
            "epochs run": summary["epochs"],
            "weights kept": (f"epoch {summary['best_epoch']}, best {t.monitor} (early stopping, patience "
                             f"{t.early_stopping_patience})" if t.early_stopping_patience
                             else f"epoch {summary['epochs']}, the last"),
            **({"warm start": f"from {summary['init_from']} (its weights, tokenizer and labels)"}
               if summary.get("init_from") else {}),
        },
    }
    binary = binary_head_rows(summary)
    if binary:
        sections["Binary head (`--labels binary`)"] = binary
    if metrics is not None:
        r = metrics["metrics"]
        sections["Evaluation"] = {
            "data": f"{metrics['data']} ({metrics['count']} texts)",
            "accuracy": f"{r['accuracy']:.4f}",
            "macro F1": f"{r['macro_f1']:.4f}",
            **({"positive vs negative accuracy": f"{r['binary_accuracy']:.4f} ({r['binary_count']} non-neutral "
                                                 "texts)"} if "binary_accuracy" in r else {}),
            **({"positive vs negative macro F1": f"{r['binary_macro_f1']:.4f}"} if "binary_macro_f1" in r else {}),
        }
        sections["Per-label results"] = {label: f"P {v['precision']:.3f} / R {v['recall']:.3f} / F1 {v['f1']:.3f} "
                                                f"(n={v['support']})" for label, v in r["per_class"].items()}
    sections["Limitations"] = [
        "Measured on a split of the same source as the training data; other sources will score lower.",
        "Scores are softmax probabilities; they are not calibrated confidence.",
    ]
    write_model_card(run.card_path, title=f"Sentiment classifier: {run.path.name}", task="sentiment", sections=sections)


def binary_head_rows(summary: dict[str, Any]) -> dict[str, str]:
    """The card's rows on the calibrated binary head and its lexicon expert, from the run's summary
    (`binary_calibration`, `lexicon_fusion`); empty for a run that records neither."""
    rows: dict[str, str] = {}
    cal, fusion = summary.get("binary_calibration"), summary.get("lexicon_fusion")
    if cal:
        fitted = (f"fitted with balanced priors on {cal['negative'] + cal['positive']} positive and negative "
                  "validation texts" if "negative" in cal else f"uncorrected ({cal.get('fitted', 'not fitted')})")
        rows["calibration"] = (f"p(positive) = sigmoid({cal['scale']:.3f} x (log p(positive) - log p(negative)) "
                               f"{cal['bias']:+.3f}), {fitted}")
    if fusion:
        if "kept_from" in fusion:
            where = f"kept from {fusion['kept_from']} ({fusion.get('fitted', 'not fitted')})"
        else:
            where = (f"fitted with balanced priors on {fusion['negative'] + fusion['positive']} positive and "
                     f"negative {fusion.get('fitted_on', 'validation texts')}")
        opinions = (f" + {fusion['opinion_scale']:.3f} x opinion lexicon" if "opinion_scale" in fusion else "") + (
            f" + {len(fusion['words'])} domain words' weights" if "words" in fusion else "")
        rows["lexicon expert"] = (f"{fusion['lexicon']}: {fusion['scale']:.3f} x atanh(compound){opinions} "
                                  f"{fusion['bias']:+.3f} added to the head's log-odds, {where}")
    return rows
