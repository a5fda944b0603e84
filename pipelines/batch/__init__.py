"""Batch evaluation jobs: resumable, sharded, per-item results; the Beam pipeline."""
