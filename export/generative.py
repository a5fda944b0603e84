"""The generative tasks' export adapter (autoencoder, vae, gan).

What is exported:

- ``vae`` / ``gan``: the generator (the VAE's decoder): ``latent`` float32 (B, latent_dim) ->
  ``images`` float32 (B, H, W, C) in [0, 1]. Latent vectors are drawn from N(0, I) by the caller;
  to get 8-bit pixels, ``round(clip(images, 0, 1) * 255)``. Float output keeps parity exact and lets
  an app choose its own rendering.
- ``autoencoder``: the reconstruction model: ``pixels`` uint8 (B, H, W, 3) RGB -> ``reconstruction``
  float32 (B, H, W, C) in [0, 1] and ``error`` float32 (B,), the per-image reconstruction MSE (the
  anomaly score; ``sensorium.json`` carries the run's threshold). The SavedModel takes any image size
  (resizing is inside the model); the TFLite file takes the model's image size.

Formats: SavedModel (signature ``serving_default``) and TFLite (float32, dynamic-range, float16;
signature ``serving_default`` with the same names). int8 is refused: the float [0, 1] image outputs
and the tiny reconstruction errors do not survive an 8-bit output scale.

Parity: the exported file and the Keras model run on the same inputs (64 seeded latent vectors for a
generator; held-out images for the autoencoder: the run's data @test or --parity-data). The row has
the max and mean absolute output difference, and the agreement = the share of items whose max
absolute difference is within the variant's tolerance (``TOLERANCES``).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.pipelines.common.artifacts import Artifact, run_config
from sensorium.runtime.errors import DataError, UsageError

log = logging.getLogger(__name__)

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("none", "dynamic", "float16")
UNAVAILABLE = {
    "int8": "int8 is not available for generative models: their float [0, 1] images and small reconstruction "
            "errors do not survive an 8-bit output scale; use --quantize float16 or dynamic",
}
# Max absolute output difference (pixels in [0, 1], errors in [0, 1]^2) an item may have and still agree.
TOLERANCES = {"saved_model": 1e-4, "none": 1e-3, "float16": 2e-2, "dynamic": 0.1}
PARITY_LATENTS = 64  # seeded latent vectors a generator's parity runs on
PARITY_IMAGES = 256  # at most this many held-out images for the autoencoder
PARITY_SEED = 0


@dataclass
class GenerativeExportSource:
    """What exporting an autoencoder, VAE or GAN needs, read from a run directory or a .keras file."""

    artifact: Artifact
    task: str
    loaded: Any  # the whole trained model (pipelines.generative.modeling.GenerativeModel)
    model: Any  # what is exported: the generator, or the autoencoder's reconstruction + error model
    info: dict[str, Any]

    formats = FORMATS
    quantizations = QUANTIZATIONS
    unavailable = UNAVAILABLE

    @classmethod
    def load(cls, artifact: Artifact) -> GenerativeExportSource:
        from sensorium.pipelines.generative.modeling import load_generative

        loaded = load_generative(artifact)
        exported = loaded.generator() if loaded.task in ("vae", "gan") else None
        if exported is None:
            from sensorium.models.autoencoder import reconstruction_error_model

            exported = reconstruction_error_model(loaded.model)
        return cls(artifact, loaded.task, loaded, exported, loaded.info)

    # --- description -------------------------------------------------------------------------
    @property
    def generator(self) -> bool:
        return self.task in ("vae", "gan")

    @property
    def image_size(self) -> tuple[int, int]:
        return self.loaded.image_size

    @property
    def channels(self) -> int:
        return self.loaded.channels

    @property
    def latent_dim(self) -> int:
        return self.loaded.latent_dim

    @property
    def input_name(self) -> str:
        return "latent" if self.generator else "pixels"

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("images",) if self.generator else ("reconstruction", "error")

    def threshold(self) -> float | None:
        """The autoencoder's anomaly threshold: RUN_DIR/anomaly.json, else the model metadata."""
        from sensorium.pipelines.generative.predict import run_threshold

        return run_threshold(self.loaded)

    def manifest(self, fmt: str, variant: str, version: str) -> dict[str, Any]:
        """sensorium.json carried inside the exported file."""
        h, w = self.image_size
        c = self.channels
        out: dict[str, Any] = {"task": self.task, "format": fmt, "variant": variant, "sensorium_version": version,
                               "image_size": [h, w], "channels": c, "latent_dim": self.latent_dim,
                               "signatures": ["serving_default"]}
        images = {"dtype": "float32", "shape": [None, h, w, c], "range": [0.0, 1.0],
                  "meaning": "images in [0, 1]; 8-bit pixels = round(clip(x, 0, 1) * 255); 1 channel = grayscale"}
        if self.generator:
            prior = self.info.get("latent_prior")
            out["input"] = {"name": "latent", "dtype": "float32", "shape": [None, self.latent_dim],
                            "distribution": "standard normal N(0, I): draw latent vectors from it to sample"}
            if prior:
                out["input"]["distribution"] = (
                    "the Gaussian mixture in latent_prior: pick component k with probability weights[k], then "
                    "latent = means[k] + cholesky[k] @ e with e ~ N(0, I)")
                out["latent_prior"] = prior
            out["output"] = {"name": "images", **images}
        else:
            size = [None, None] if fmt == "saved_model" else [h, w]
            out["input"] = {"name": "pixels", "dtype": "uint8", "shape": [None, *size, 3], "color": "RGB",
                            "image_size": [h, w],
                            "normalisation": "inside the model (pixels / 255, grayscale if the model is)"}
            out["outputs"] = [
                {"name": "reconstruction", **images, "meaning": "the (denoised) reconstruction, " + images["meaning"]},
                {"name": "error", "dtype": "float32", "shape": [None],
                 "meaning": "per-image mean squared reconstruction error in [0, 1] pixel units (the anomaly "
                            "score): anomalous when error > anomaly_threshold"},
            ]
            out["anomaly_threshold"] = self.threshold()
        return out

    # --- data ----------------------------------------------------------------------------------
    def evaluation_data(self, spec: str | None) -> np.ndarray:
        """Parity inputs: seeded latent vectors (generators) or held-out uint8 images at the model's size."""
        if self.generator:
            from sensorium.pipelines.generative.images import fixed_latents

            if spec:
                raise UsageError("--parity-data is not used for vae / gan exports (parity runs on seeded latent "
                                 "vectors)")
            return fixed_latents(PARITY_LATENTS, self.latent_dim, PARITY_SEED)
        return self._images(spec)

    def _images(self, spec: str | None) -> np.ndarray:
        from sensorium.pipelines.common.dataspec import parse_spec
        from sensorium.pipelines.generative.config import AutoencoderConfig
        from sensorium.pipelines.generative.data import load_images, take_pixels

        cfg = run_config(self.artifact, AutoencoderConfig)
        if not spec:
            if cfg is None or not cfg.data.spec:
                raise UsageError("a .keras file carries no data spec: pass --parity-data SPEC")
            base = cfg.data.spec.rsplit("@", 1)[0] if parse_spec(cfg.data.spec).split else cfg.data.spec
            spec = f"{base}@test"
        data_cfg = cfg.data if cfg is not None else AutoencoderConfig().data
        split = load_images(spec, data_cfg, seed=cfg.seed if cfg else 42, image_size=self.image_size)
        pixels, _ = take_pixels(split, PARITY_IMAGES, seed=PARITY_SEED)
        if len(pixels) == 0:
            raise DataError(f"{spec}: no images to check parity on")
        return self._at_model_size(np.asarray(pixels, np.uint8))

    def _at_model_size(self, x: np.ndarray) -> np.ndarray:
        """TFLite files take the model's fixed size: resize like the model does (bilinear)."""
        if tuple(x.shape[1:3]) == self.image_size:
            return x
        import tensorflow as tf

        out = tf.image.resize(x, self.image_size, method="bilinear").numpy()
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def calibration_data(self, spec: str | None) -> list[Any]:
        raise UsageError(UNAVAILABLE["int8"])

    # --- running -----------------------------------------------------------------------------
    def _as_dict(self, out: Any) -> dict[str, np.ndarray]:
        if isinstance(out, dict):
            return {k: np.asarray(out[k], np.float32) for k in self.output_names}
        return {self.output_names[0]: np.asarray(out, np.float32)}

    def run_keras(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import tensorflow as tf

        fn = tf.function(lambda v: self.model(v, training=False), reduce_retracing=True)
        return _batched(lambda b: self._as_dict(fn(tf.constant(b))), x)

    def _serve(self) -> tuple[Callable[[Any], dict[str, Any]], Any]:
        """(the serving function returning named outputs, its input TensorSpec for a SavedModel)."""
        import tensorflow as tf

        if self.generator:
            spec = tf.TensorSpec((None, self.latent_dim), tf.float32, name="latent")
            return (lambda z: {"images": self.model(z, training=False)}), spec
        spec = tf.TensorSpec((None, None, None, 3), tf.uint8, name="pixels")
        return (lambda x: dict(self.model(x, training=False))), spec

    def _archive(self, fixed_size: bool) -> Any:
        import keras
        import tensorflow as tf

        serve, spec = self._serve()
        if fixed_size and not self.generator:
            spec = tf.TensorSpec((None, *self.image_size, 3), tf.uint8, name="pixels")
        archive = keras.export.ExportArchive()
        archive.track(self.model)
        archive.add_endpoint("serving_default", tf.function(serve), input_signature=[spec])
        return archive

    def write_saved_model(self, out: Path, version: str) -> Path:
        """Write the SavedModel (serving_default, assets/sensorium.json) at `out`."""
        out = Path(out)
        self._archive(fixed_size=False).write_out(str(out), verbose=False)
        assets = out / "assets"
        assets.mkdir(exist_ok=True)
        (assets / "sensorium.json").write_text(json.dumps(self.manifest("saved_model", "none", version), indent=2)
                                               + "\n", encoding="utf-8")
        log.debug("SavedModel written to %s", out)
        return out

    def saved_model_runner(self, path: str | Path) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        import tensorflow as tf

        fn = tf.saved_model.load(str(path)).signatures["serving_default"]
        dtype = tf.float32 if self.generator else tf.uint8

        def run(x: np.ndarray) -> dict[str, np.ndarray]:
            return self._as_dict({k: v.numpy() for k, v in fn(**{self.input_name: tf.constant(x, dtype)}).items()})

        return run

    def to_tflite(self, variant: str, calibration: list[Any] | None) -> bytes:
        """Convert through a SavedModel (as export.tflite does), builtin ops only."""
        from sensorium.export.tflite import convert_archive

        if variant not in QUANTIZATIONS:
            raise UsageError(UNAVAILABLE.get(variant, f"--quantize {variant} is not available for {self.task}"))
        return convert_archive(self._archive(fixed_size=True), variant)

    def tflite_files(self, variant: str, version: str) -> dict[str, bytes]:
        return {"sensorium.json": json.dumps(self.manifest("tflite", variant, version), indent=2).encode()}

    def tflite_runner(self, path: str | Path) -> tuple[Callable[[np.ndarray], dict[str, np.ndarray]], str]:
        """The edge runtime (no TensorFlow) on a written .tflite, through its serving_default signature."""
        from sensorium.runtime.tflite import EdgeModel

        edge = EdgeModel(path)
        runner = edge.interpreter.get_signature_runner("serving_default")
        return (lambda x: self._as_dict(runner(**{self.input_name: x}))), edge.runtime

    def parity(self, variant: str, run: Callable[[np.ndarray], dict[str, np.ndarray]], x: np.ndarray,
               keras_outputs: dict[str, np.ndarray], *, size_bytes: int, path: str,
               latency_runs: int) -> dict[str, Any]:
        """The parity row: output differences against Keras, agreement within the variant's tolerance,
        the PSNR of the exported images against Keras's and (autoencoder) anomaly-decision agreement."""
        from sensorium.export.parity import THRESHOLDS, median_latency_ms
        from sensorium.pipelines.generative.images import psnr

        outputs = _batched(run, x)
        diffs = {k: np.abs(outputs[k].astype(np.float64) - keras_outputs[k]) for k in self.output_names}
        per_item = np.max(np.stack([d.reshape(len(x), -1).max(axis=1) for d in diffs.values()]), axis=0)
        tolerance = TOLERANCES[variant]
        agreement = float(np.mean(per_item <= tolerance))
        threshold = THRESHOLDS[variant]
        key = self.output_names[0]
        row: dict[str, Any] = {
            "variant": variant, "path": path, "size_bytes": int(size_bytes), "count": int(len(x)),
            "inputs": "seeded latent vectors N(0, I)" if self.generator else "held-out images",
            "psnr_vs_keras": float(np.mean(psnr(outputs[key], keras_outputs[key]))),
            "agreement": agreement, "agreement_threshold": threshold, "tolerance": tolerance,
            "passed": bool(agreement >= threshold),
            "max_abs_diff": float(max(d.max() for d in diffs.values())),
            "mean_abs_diff": float(np.mean(diffs[key])),
        }
        if not self.generator:
            row["error_max_abs_diff"] = float(diffs["error"].max())
            limit = self.threshold()
            if limit is not None:
                same = (outputs["error"] > limit) == (keras_outputs["error"] > limit)
                row["anomaly_agreement"] = float(np.mean(same))
        row["latency_ms_median"] = median_latency_ms(run, x[:1], runs=latency_runs)
        row["latency_calls"] = latency_runs
        return row


def _batched(fn: Callable[[np.ndarray], dict[str, np.ndarray]], x: np.ndarray,
             batch_size: int = 32) -> dict[str, np.ndarray]:
    parts = [fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
