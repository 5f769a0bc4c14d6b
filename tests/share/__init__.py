"""The URL codec and the exported Keras scripts."""
