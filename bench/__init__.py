"""Benchmarks for sharecore, run side by side: `python -m bench [--quick | --smoke] [--only NAME]`.

Every comparison runs its cases in turn (A B A B ...), several rounds, in one process, and
reports medians and their ratio, so that a shared, noisy machine slows both sides alike.
The sections:

* `models`: `model.fit` of sharecore's tied and untied models against the same functions
  written with plain Keras layers (`bench.reference`);
* `trainer`: `sharecore.train` against a bare compiled training step of the same two models;
* `growth`: speed and memory against the number of uses of one shared tensor and its size;
* `dashboard`: the Streamlit app in headless Chromium (start-up, Train, reruns, server memory);
* `compile`: the compile time and memory of `train()`'s step against the number of uses, each
  point in a fresh process, beside the same points of an earlier commit;
* `soak`: a process's memory over many runs cycling the presets, beside an earlier commit.

Benchmarks are not tests: nothing here asserts a time. `tests/project/test_bench.py` checks that the
comparisons compare the same functions and that `--smoke` runs.
"""
