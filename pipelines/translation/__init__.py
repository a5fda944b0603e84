"""Machine translation with a Transformer encoder-decoder."""
