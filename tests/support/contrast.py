"""WCAG 2's contrast ratio, written here from the W3C's definition and independent of the app's own
(`sharecore.viz.style.readable`), for the tests that check text colours."""

from __future__ import annotations


def contrast_ratio(color: list[float], background: list[float]) -> float:
    """WCAG 2.x contrast of `color` (r, g, b in 0-255, alpha in 0-1) drawn on an opaque `background` (r, g, b):
    the colour is first blended onto the background, then (L1 + 0.05) / (L2 + 0.05) of relative
    luminances (sRGB channels linearised, weights 0.2126, 0.7152, 0.0722)."""
    alpha = color[3]
    blended = [alpha * c + (1 - alpha) * b for c, b in zip(color[:3], background[:3])]

    def luminance(rgb: list[float]) -> float:
        linear = [(v / 255) / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(blended), luminance(background[:3])), reverse=True)
    return (light + 0.05) / (dark + 0.05)
