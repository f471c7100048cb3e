"""The graph neural network: features, batching, model, checkpoints."""
