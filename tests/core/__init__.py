"""The plain-Python core: specs, limits and untrusted input."""
