"""Figures: the house plotly style, training and compare charts, the model diagram and tensor views.

Plotly and pandas; no TensorFlow.
"""
