"""Backbones: TF Hub modules behind Keras 3 layers, keras.applications (filled in by the transfer-learning work)."""
