"""`python -m sharecore` and the `sharecore` command."""
