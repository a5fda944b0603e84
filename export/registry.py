"""The exporter registry: formats `sensorium export --format` knows, with their quantisation modes."""
from __future__ import annotations

from dataclasses import dataclass

from sensorium.runtime.registry import Registry


@dataclass(frozen=True)
class ExportFormat:
    name: str
    description: str
    quantizations: tuple[str, ...]


EXPORTERS: Registry[ExportFormat] = Registry("export format")
EXPORTERS.register("saved_model", ExportFormat(
    "saved_model", "TensorFlow SavedModel with raw-input signatures (serving_default: uint8 pixels; "
    "serving_bytes: encoded images)", ("none",)))
EXPORTERS.register("hub-module", ExportFormat(
    "hub-module", "the trained feature extractor as a reusable TF2 SavedModel (__call__(images, training), "
    "trainable variables) for --backbone hub:PATH and tensorflow_hub.load", ("none",)))
EXPORTERS.register("tflite", ExportFormat(
    "tflite", "TFLite flatbuffer, builtin ops only, labels and sensorium.json packed inside",
    ("none", "dynamic", "float16", "int8", "int8-weights")))


def describe_formats() -> str:
    return "; ".join(f"{f.name} ({', '.join(f.quantizations)})" for f in map(EXPORTERS.get, EXPORTERS.names()))
