"""Sharing an experiment: the URL codec and the export of a spec as a standalone Keras script."""
