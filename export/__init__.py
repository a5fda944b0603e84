"""Exporters (SavedModel, TFLite), parity checks and the TensorFlow-free edge runner."""
