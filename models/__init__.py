"""Sensorium models: reusable Keras 3 blocks and task model builders (``sensorium.models``)."""
