"""Files that ship with Sensorium: bundled default models and example inputs."""
