"""The engine: one training loop for every method."""
