"""Training: fitting to reference force fields and end-to-end training on QM data."""
