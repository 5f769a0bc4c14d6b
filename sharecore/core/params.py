"""Honest parameter accounting, computed from the spec alone (no TensorFlow).

A tied model stores each shared tensor once; the first use that reads it owns it and the
other uses reference it. An untied model stores one copy per use, of the shape that use
actually reads. The totals equal `count_params()` of the built Keras models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sharecore.core.plan import Plan, as_plan
from sharecore.core.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

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
    """The per-use rows and their totals."""

    rows: tuple[tuple[Any, ...], ...]  # one per variant and use, in the order of COLUMNS
    tied_total: int
    untied_total: int

    @cached_property
    def table(self) -> pd.DataFrame:
        """The rows as a DataFrame with COLUMNS (pandas is imported only when a table is asked for)."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=COLUMNS)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by COLUMNS (JSON-ready)."""
        return [dict(zip(COLUMNS, row)) for row in self.rows]

    def to_text(self) -> str:
        """The rows as an aligned plain-text table (numbers right-aligned), without pandas."""
        cells = [COLUMNS, *[[str(v) for v in row] for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
        numeric = [isinstance(v, int) for v in self.rows[0]] if self.rows else [False] * len(COLUMNS)
        return "\n".join(
            " ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()
            for row in cells
        )

    @property
    def saved(self) -> int:
        """Parameters the tie saves."""
        return self.untied_total - self.tied_total

    @property
    def ratio(self) -> float:
        """Untied parameters per tied parameter (1.0 when nothing is shared)."""
        return self.untied_total / self.tied_total if self.tied_total else float("nan")


def param_report(spec: ModelSpec | Plan) -> ParamReport:
    """Counts parameters per use for the tied and the untied model.

    Args:
        spec: the model spec, or its `Plan`.

    Returns:
        A `ParamReport`; `tied_total` and `untied_total` equal `count_params()` of
        `build(spec, tied=True)` and `build(spec, tied=False)`.

    Raises:
        ValueError: if the spec cannot be built.

    Example:
        >>> from sharecore import preset
        >>> report = param_report(preset("seed-mixed"))  # W (10, 5) read by a dense op and a 1x1 conv
        >>> report.tied_total, report.untied_total, report.saved
        (50, 100, 50)
        >>> report.table[report.table.variant == "tied"][["use", "owned_params", "referenced_params"]]
             use  owned_params  referenced_params
        0  dense            50                  0
        1   conv             0                 50
    """
    p = as_plan(spec)
    tensor_sizes = {t.name: math.prod(t.shape) for t in p.spec.tensors}
    rows = []
    totals = {"tied": 0, "untied": 0}
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
            totals[variant] += owned
            rows.append(
                (
                    variant,
                    u.use.name,
                    u.use.op,
                    tensor or "(own)",
                    u.use.rule.describe(),
                    str(u.kernel_shape),
                    u.kernel_size,
                    bias,
                    owned,
                    referenced,
                    owned * BYTES_PER_PARAM,
                )
            )
    return ParamReport(tuple(rows), totals["tied"], totals["untied"])
