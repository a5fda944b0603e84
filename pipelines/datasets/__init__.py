"""Dataset builders: what packages ship, turned into Sensorium datasets (set-up time)."""
