"""Honest parameter accounting, computed from the spec alone (no TensorFlow).

A tied model stores each shared tensor once; the first use that reads it owns it and the
other uses reference it. An untied model stores one copy per use, of the shape that use
actually reads. The totals equal `count_params()` of the built Keras models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sharecore.plan import plan
from sharecore.spec import ModelSpec

BYTES_PER_PARAM = 4  # float32

COLUMNS = [
    "variant",  # 'tied' | 'untied'
    "use",
    "op",
    "tensor",  # the shared tensor read, or '(own)'
    "rule",
    "kernel_shape",  # as the op sees it
    "kernel_params",  # elements of the kernel the use reads
    "bias_params",  # elements of the bias it adds (0 for none)
    "owned_params",  # parameters stored by this use's variables
    "referenced_params",  # parameters it reads but another use stores
    "bytes",  # owned_params * 4
]


@dataclass(frozen=True)
class ParamReport:
    """The per-use table and its totals."""

    table: pd.DataFrame
    tied_total: int
    untied_total: int

    @property
    def saved(self) -> int:
        """Parameters the tie saves."""
        return self.untied_total - self.tied_total

    @property
    def ratio(self) -> float:
        """Untied parameters per tied parameter (1.0 when nothing is shared)."""
        return self.untied_total / self.tied_total if self.tied_total else float("nan")


def param_report(spec: ModelSpec) -> ParamReport:
    """Counts parameters per use for the tied and the untied model.

    Args:
        spec: the model spec.

    Returns:
        A `ParamReport`; `tied_total` and `untied_total` equal `count_params()` of
        `build(spec, tied=True)` and `build(spec, tied=False)`.

    Raises:
        ValueError: if the spec cannot be built.
    """
    p = plan(spec)
    tensor_sizes = {t.name: math.prod(t.shape) for t in spec.tensors}
    rows = []
    for variant in ("tied", "untied"):
        stored_tensors: set[str] = set()
        stored_shared_bias: set[str] = set()
        for u in p.uses:
            tensor = u.use.tensor
            bias = u.bias_size
            if variant == "tied" and tensor is not None:
                kernel_owned = 0 if tensor in stored_tensors else tensor_sizes[tensor]
                stored_tensors.add(tensor)
                if u.use.bias == "shared":
                    bias_owned = 0 if tensor in stored_shared_bias else bias
                    stored_shared_bias.add(tensor)
                else:
                    bias_owned = bias
            else:
                kernel_owned, bias_owned = u.kernel_size, bias
            owned = kernel_owned + bias_owned
            # What it reads from variables another use stores.
            referenced = (u.kernel_size if kernel_owned == 0 else 0) + (bias - bias_owned)
            rows.append(
                {
                    "variant": variant,
                    "use": u.use.name,
                    "op": u.use.op,
                    "tensor": tensor or "(own)",
                    "rule": u.use.rule.describe(),
                    "kernel_shape": str(u.kernel_shape),
                    "kernel_params": u.kernel_size,
                    "bias_params": bias,
                    "owned_params": owned,
                    "referenced_params": referenced,
                    "bytes": owned * BYTES_PER_PARAM,
                }
            )
    table = pd.DataFrame(rows, columns=COLUMNS)
    totals = table.groupby("variant")["owned_params"].sum()
    return ParamReport(table, int(totals["tied"]), int(totals["untied"]))
