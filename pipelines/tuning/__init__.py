"""Hyperparameter search with KerasTuner (`sensorium tune TASK`)."""
