"""Figures: every number a chart draws, the model diagram."""
