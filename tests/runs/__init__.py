"""Runs: the background runner and its queue, the run store, keeping, what-if labels, diagnosis."""
