"""Text machinery shared by the text tasks (sentiment, translation): the subword tokenizer and text input."""
