"""Image classification: data -> CNN training -> evaluation -> classify."""
