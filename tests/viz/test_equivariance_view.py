"""The equivariance view draws the maps it is given: each turned panel holds the maps the panel above it
names, turned with np.rot90, for a tied model; and its titles say how far off an untied one is."""

from __future__ import annotations

import numpy as np

import sharecore
from sharecore.nn.equivariance import equivariance, sample_image
from sharecore.viz.equivariance import equivariance_view

ROT = sharecore.preset("rotation-tied-conv")


def panel(fig, variant: str, turned: bool, use: str | None) -> np.ndarray:
    (trace,) = [t for t in fig.data if t.meta == {"variant": variant, "turned": turned, "use": use}]
    return np.asarray(trace.z, dtype=float)


def test_each_turned_tied_panel_is_the_panel_it_names_turned_and_untied_ones_are_not():
    image = sample_image(ROT)
    assert image.shape == (8, 8, 1)  # a held-out digit
    rng = np.random.default_rng(2)
    copies = {u: rng.standard_normal((3, 3, 1, 4)).astype("float32") for u in ("rot0", "rot90", "rot180", "rot270")}
    tied = equivariance(ROT, tied=True, image=image)
    untied = equivariance(ROT, tied=False, image=image, weights=copies)
    fig = equivariance_view(tied, untied, channel=2)
    np.testing.assert_array_equal(panel(fig, "tied", True, None), np.rot90(image[:, :, 0]))
    scale = max(np.abs(panel(fig, "tied", False, u)).max() for u in tied.uses)
    for r in range(4):
        a, b = f"rot{90 * r}", f"rot{90 * ((r + 1) % 4)}"
        np.testing.assert_allclose(
            panel(fig, "tied", True, b), np.rot90(panel(fig, "tied", False, a)), atol=1e-5 * scale
        )
        off = np.abs(panel(fig, "untied", True, b) - np.rot90(panel(fig, "untied", False, a))).max()
        assert off > 0.05
    titles = [a.text for a in fig.layout.annotations]
    assert "<b>rot90</b><br>← rot0 turned<br>same (" in " ".join(titles)
    assert sum("off by" in t for t in titles) == 4 and sum("same (" in t for t in titles) == 4
