"""Ready-made specs. The `seed-*` ones are the three examples of the popular Keras
weight-sharing recipe, corrected so that their shapes fit and their ties are real."""

from __future__ import annotations

from typing import Any

from sharecore.core.spec import ModelSpec

_PRESETS: dict[str, dict[str, Any]] = {
    "seed-dense": {
        "description": "One (10, 10) kernel W used by two dense layers in a chain. "
        "Square, so the second use can read the first one's 10 outputs.",
        "input_shape": [10],
        "tensors": [{"name": "W", "shape": [10, 10]}],
        "uses": [
            {"name": "dense_1", "op": "dense", "tensor": "W", "activation": "tanh"},
            {"name": "dense_2", "op": "dense", "tensor": "W"},
        ],
    },
    "seed-conv": {
        "description": "An unshared 3x3 stem conv maps 3 channels to 16; one (3, 3, 16, 16) "
        "kernel K is then used by two 3x3 convs in a chain.",
        "input_shape": [28, 28, 3],
        "tensors": [{"name": "K", "shape": [3, 3, 16, 16]}],
        "uses": [
            {"name": "stem", "op": "conv2d", "kernel_shape": [3, 3, 3, 16], "activation": "relu"},
            {"name": "conv_1", "op": "conv2d", "tensor": "K", "activation": "relu"},
            {"name": "conv_2", "op": "conv2d", "tensor": "K"},
        ],
    },
    "seed-mixed": {
        "description": "One (10, 5) tensor W read by a dense op and, reshaped to (1, 1, 10, 5), "
        "by a 1x1 conv on the input reshaped to (1, 1, 10). Both branches compute the same "
        "function until training moves untied copies apart.",
        "input_shape": [10],
        "tensors": [{"name": "W", "shape": [10, 5]}],
        "uses": [
            {"name": "dense", "op": "dense", "tensor": "W", "source": "input"},
            {
                "name": "conv",
                "op": "conv2d",
                "tensor": "W",
                "rule": {"kind": "reshape", "shape": [1, 1, 10, 5]},
                "source": "input",
                "input_reshape": [1, 1, 10],
            },
        ],
        "outputs": ["dense", "conv"],
    },
    "tied-autoencoder": {
        "description": "Encoder dense with W (10, 5) and tanh; the decoder reads transpose(W).",
        "input_shape": [10],
        "tensors": [{"name": "W", "shape": [10, 5]}],
        "uses": [
            {"name": "encoder", "op": "dense", "tensor": "W", "activation": "tanh"},
            {"name": "decoder", "op": "dense", "tensor": "W", "rule": "transpose"},
        ],
    },
    "albert-mlp": {
        "description": "ALBERT-style: three MLP blocks (16 -> 32 -> 16) that all share one "
        "up-projection and one down-projection.",
        "input_shape": [16],
        "tensors": [{"name": "W_up", "shape": [16, 32]}, {"name": "W_down", "shape": [32, 16]}],
        "uses": [
            {"name": f"block{i}_{part}", "op": "dense", "tensor": tensor, "activation": act}
            for i in (1, 2, 3)
            for part, tensor, act in (("up", "W_up", "relu"), ("down", "W_down", "tanh"))
        ],
    },
    "siamese-digits": {
        "description": "A siamese pair over two 8x8 digit images side by side (128 inputs): both "
        "towers share a 3x3 conv kernel K and a dense embedding D. With the digits data set "
        "the task is 'is the left digit the larger?': a linear readout of the two embeddings can "
        "compare them, but cannot tell 'same' from 'different'.",
        "input_shape": [128],
        "tensors": [{"name": "K", "shape": [3, 3, 1, 8]}, {"name": "D", "shape": [288, 16]}],
        "uses": [
            use
            for tower, start in (("a", 0), ("b", 64))
            for use in (
                {
                    "name": f"tower_{tower}_conv",
                    "op": "conv2d",
                    "tensor": "K",
                    "source": "input",
                    "input_slice": [start, start + 64],
                    "input_reshape": [8, 8, 1],
                    "padding": "valid",
                    "activation": "relu",
                },
                {
                    "name": f"tower_{tower}_embed",
                    "op": "dense",
                    "tensor": "D",
                    "input_reshape": [288],
                    "activation": "tanh",
                },
            )
        ],
        "outputs": ["tower_a_embed", "tower_b_embed"],
    },
    "partial-share": {
        "description": "Partial sharing: 'wide' reads all of W (10, 8); 'narrow' reads only its "
        "first 4 columns through a slice rule.",
        "input_shape": [10],
        "tensors": [{"name": "W", "shape": [10, 8]}],
        "uses": [
            {"name": "wide", "op": "dense", "tensor": "W", "source": "input", "activation": "relu"},
            {
                "name": "narrow",
                "op": "dense",
                "tensor": "W",
                "source": "input",
                "rule": {"kind": "slice", "begin": [0, 0], "size": [10, 4]},
                "activation": "relu",
            },
        ],
        "outputs": ["wide", "narrow"],
    },
    "tied-lm": {
        "description": "A tiny language model with tied input and output embeddings (Press & Wolf 2017, "
        "as in GPT-2): one table E (32 tokens, 16 dims) embeds the token ids; after a dense tanh block, "
        "transpose(E) turns each position's 16 values into logits over the 32 tokens. Train it on "
        "dataset 'tokens' (next-token prediction).",
        "input_shape": [8],
        "input_vocab": 32,
        "tensors": [{"name": "E", "shape": [32, 16]}],
        "uses": [
            {"name": "embed", "op": "embedding", "tensor": "E"},
            {"name": "block", "op": "dense", "kernel_shape": [16, 16], "activation": "tanh"},
            {"name": "logits", "op": "dense", "tensor": "E", "rule": "transpose"},
        ],
    },
    "albert-embedding": {
        "description": "ALBERT's factorized, tied embedding (Lan et al. 2020): token ids are embedded "
        "with a small table E (32 tokens, 4 dims) and projected up by P (4, 16); after a dense tanh "
        "block, the logits come back down through transpose(P) and transpose(E), so both are shared "
        "by the input and the output. Train it on dataset 'tokens'.",
        "input_shape": [8],
        "input_vocab": 32,
        "tensors": [{"name": "E", "shape": [32, 4]}, {"name": "P", "shape": [4, 16]}],
        "uses": [
            {"name": "embed", "op": "embedding", "tensor": "E"},
            {"name": "project_up", "op": "dense", "tensor": "P"},
            {"name": "block", "op": "dense", "kernel_shape": [16, 16], "activation": "tanh"},
            {"name": "project_down", "op": "dense", "tensor": "P", "rule": "transpose"},
            {"name": "logits", "op": "dense", "tensor": "E", "rule": "transpose"},
        ],
    },
    "rotation-tied-conv": {
        "description": "A rotation-tied (p4) convolution, as in group-equivariant CNNs (Cohen & Welling "
        "2016): one 3x3 kernel K (1 -> 4 channels) reads the image as it is and under rotations of "
        "90, 180 and 270 degrees; the four outputs are concatenated. Rotating the input rotates "
        "the outputs and swaps them around, which 4 untied kernels do not guarantee.",
        "input_shape": [8, 8, 1],
        "tensors": [{"name": "K", "shape": [3, 3, 1, 4]}],
        "uses": [
            {"name": f"rot{k * 90}", "op": "conv2d", "tensor": "K", "source": "input", "activation": "tanh"}
            | ({"rule": {"kind": "rot90", "k": k}} if k else {})
            for k in range(4)
        ],
        "outputs": ["rot0", "rot90", "rot180", "rot270"],
    },
    "conv-autoencoder": {
        "description": "A tied convolutional autoencoder on 8x8 images: the encoder conv (stride 2, "
        "tanh) maps 1 channel to 4 with K (3, 3, 1, 4); the decoder's transposed conv (stride 2) "
        "reads the same K, as it is, to map the 4 channels back to 1 at 8x8.",
        "input_shape": [8, 8, 1],
        "tensors": [{"name": "K", "shape": [3, 3, 1, 4]}],
        "uses": [
            {"name": "encoder", "op": "conv2d", "tensor": "K", "strides": 2, "activation": "tanh"},
            # tf.nn.conv2d_transpose's kernel is (kh, kw, c_out, c_in): conv2d's layout with the
            # channel roles swapped, so the identity rule gives the decoder the encoder's kernel.
            {"name": "decoder", "op": "conv2d_transpose", "tensor": "K", "strides": 2},
        ],
    },
}


def presets() -> tuple[str, ...]:
    """The names of the built-in specs.

    Example:
        >>> presets()[:3]
        ('seed-dense', 'seed-conv', 'seed-mixed')
    """
    return tuple(_PRESETS)


def preset(name: str) -> ModelSpec:
    """Returns the built-in spec `name`.

    Raises:
        ValueError: if there is no preset of that name.

    Example:
        >>> spec = preset("seed-mixed")
        >>> [(u.name, u.op, u.tensor) for u in spec.uses]
        [('dense', 'dense', 'W'), ('conv', 'conv2d', 'W')]
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}. Choose one of: {', '.join(_PRESETS)}.")
    return ModelSpec.from_dict({"name": name, **_PRESETS[name]})
