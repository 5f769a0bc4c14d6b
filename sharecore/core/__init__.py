"""The plain-Python core: specs, rules, plans, parameter counts, presets, limits, run checks and results.

No TensorFlow, no plotting, no Streamlit: importing any of it costs a fraction of a second.
"""
