"""Exercises and pitfalls, on real runs."""
