"""Speech recognition: log-mel front end, conv + LSTM encoder, CTC (the `speech` task)."""
