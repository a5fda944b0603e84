"""The TensorFlow-free runtime: runs every bundled and exported model on the edge."""
