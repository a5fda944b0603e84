"""Machinery every task shares: data specs, run directories, configs, registries, metrics, reports.

Modules here import no TensorFlow at import time unless their name says they need it
(`strategy`, `callbacks`, `tfdata`), so the TensorFlow-free edge runtime can use the rest.
"""
