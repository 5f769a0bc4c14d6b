"""The Keras engine: models, ties, data, training, continuing, distribution."""
