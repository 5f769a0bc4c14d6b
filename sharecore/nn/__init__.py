"""The Keras engine: sharecore's layers, models, data, devices and the trainer.

The only part of sharecore that imports TensorFlow and Keras, always through `sharecore.nn.tfimport`
(which keeps TensorFlow's start-up lines off stderr).
"""
