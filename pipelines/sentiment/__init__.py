"""Sentiment (text classification) with a Transformer encoder."""
