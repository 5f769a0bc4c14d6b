"""The life of a training run: in the background, kept in the run store, compared, labelled and diagnosed.

No TensorFlow at import: the runner imports the trainer when a run starts.
"""
