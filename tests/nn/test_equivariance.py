"""The equivariance view's numbers: each use's output maps on an image and on its turn or flip, against
a NumPy cross-correlation of the same kernels, and the slots against np.rot90 / np.flip of the maps."""

from __future__ import annotations

import numpy as np
import pytest

import sharecore
from sharecore.core.spec import ModelSpec
from sharecore.core.symmetry import symmetric_uses, transform_for
from sharecore.nn.equivariance import equivariance

ROT = sharecore.preset("rotation-tied-conv")  # K (3, 3, 1, 4), uses rot0, rot90, rot180, rot270; tanh, no bias


def correlate_same(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Keras's conv2d, stride 1, padding 'same', no bias, by hand: (h, w, c_in) * (kh, kw, c_in, c_out)."""
    kh, kw = k.shape[:2]
    padded = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    h, w = x.shape[:2]
    out = np.zeros((h, w, k.shape[3]))
    for i in range(h):
        for j in range(w):
            out[i, j] = np.einsum("abc,abcd->d", padded[i : i + kh, j : j + kw], k)
    return out


def numpy_maps(x: np.ndarray, kernels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.tanh(correlate_same(x, k)) for name, k in kernels.items()}


def image() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((8, 8, 1)).astype("float32")


def test_tied_rotation_conv_moves_each_turned_map_to_the_next_slot_as_numpy_computes_it():
    k = sharecore.initial_values(ROT, 0)["K"]
    found = equivariance(ROT, tied=True, image=image())
    assert found.uses == ("rot0", "rot90", "rot180", "rot270")
    assert found.slot == {"rot0": "rot90", "rot90": "rot180", "rot180": "rot270", "rot270": "rot0"}
    kernels = {f"rot{90 * r}": np.rot90(k, r, axes=(0, 1)) for r in range(4)}
    x = image()
    plain, turned = numpy_maps(x, kernels), numpy_maps(np.rot90(x, 1, axes=(0, 1)), kernels)
    for name in found.uses:
        np.testing.assert_allclose(found.maps[name], plain[name], atol=1e-5)
        np.testing.assert_allclose(found.turned_maps[name], turned[name], atol=1e-5)
    # The oracle: turning use r's maps gives use r+1's maps on the turned image.
    for r in range(4):
        a, b = f"rot{90 * r}", f"rot{90 * ((r + 1) % 4)}"
        np.testing.assert_allclose(np.rot90(plain[a], 1, axes=(0, 1)), turned[b], atol=1e-5)
    assert found.worst < 1e-5


def test_untied_copies_that_trained_apart_lose_it_by_as_much_as_numpy_says():
    rng = np.random.default_rng(5)
    copies = {
        name: rng.standard_normal((3, 3, 1, 4)).astype("float32") for name in ("rot0", "rot90", "rot180", "rot270")
    }
    found = equivariance(ROT, tied=False, image=image(), weights=copies)
    x = image()
    plain, turned = numpy_maps(x, copies), numpy_maps(np.rot90(x, 1, axes=(0, 1)), copies)
    scale = max(np.abs(m).max() for m in plain.values())
    for a, b in found.slot.items():
        expected = np.abs(turned[b] - np.rot90(plain[a], 1, axes=(0, 1))).max() / scale
        np.testing.assert_allclose(found.error[a], expected, rtol=1e-4)
    assert found.worst > 0.1


def test_untied_copies_at_their_start_are_still_the_turns_they_were_initialised_as():
    assert equivariance(ROT, tied=False, image=image()).worst < 1e-5


def test_a_flip_tied_pair_swaps_slots_under_a_flip():
    spec = ModelSpec.from_dict(
        {
            "name": "flip-pair",
            "input_shape": [6, 6, 2],
            "tensors": [{"name": "K", "shape": [3, 3, 2, 3]}],
            "uses": [
                {"name": "plain", "op": "conv2d", "tensor": "K", "source": "input", "activation": "tanh"},
                {
                    "name": "mirrored",
                    "op": "conv2d",
                    "tensor": "K",
                    "source": "input",
                    "activation": "tanh",
                    "rule": {"kind": "flip", "axis": 1},
                },
            ],
            "outputs": ["plain", "mirrored"],
        }
    )
    assert transform_for(spec) == "a flip left to right"
    x = np.random.default_rng(1).standard_normal((6, 6, 2)).astype("float32")
    found = equivariance(spec, tied=True, image=x)
    assert found.slot == {"plain": "mirrored", "mirrored": "plain"}
    k = sharecore.initial_values(spec, 0)["K"]
    plain = numpy_maps(x, {"plain": k, "mirrored": np.flip(k, 1)})
    np.testing.assert_allclose(found.turned_maps["mirrored"], np.flip(plain["plain"], 1), atol=1e-5)
    assert found.worst < 1e-5


def test_a_spec_without_turned_or_flipped_uses_is_refused_with_a_pointer():
    assert symmetric_uses(sharecore.preset("seed-conv")) == ()
    with pytest.raises(ValueError, match="rotation-tied-conv"):
        equivariance(sharecore.preset("seed-conv"), tied=True, image=np.zeros((28, 28, 3)))
