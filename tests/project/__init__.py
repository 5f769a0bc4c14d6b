"""The project as a whole: import boundaries, installing, hosting, benchmarks, soak."""
