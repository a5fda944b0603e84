"""Sensorium pipelines: data -> train -> evaluate, one package per task, plus shared machinery in `common`."""
