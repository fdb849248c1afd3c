"""Success models for `allocate`: f(b) = P(the prompt is answered correctly with b samples).

- `best_of_b`: f(b) = 1 - (1 - p_hat)^b, the chance that at least one of b samples is correct (pass@b).
  Exact for best-of-N with an oracle verifier; optimistic for majority vote.
- `majority`: f(b) = acc_bin(b), the mean majority-vote accuracy at b samples of the bank's prompts in the
  prompt's difficulty bin, fitted from a sample bank (`fit_majority_table`). Past the table's last b the
  last value is used. Written into the policy file as `curve: {kind: majority, acc: {bin: [acc(1), ...]}}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Mapping, Sequence

import numpy as np

from ..schema import Invalid, at_least, between, non_empty, option

CURVES = ("best_of_b", "majority")


def best_of_b(p_hat: float, b: int) -> float:
    p = min(1.0, max(0.0, float(p_hat)))
    return 1.0 - (1.0 - p) ** b if b > 0 else 0.0


class Curve:
    """f(difficulty, b) for one success model."""

    def __init__(self, kind: str, acc: Mapping[int, Sequence[float]] | None = None):
        self.kind = kind
        self.acc = {int(k): [float(x) for x in v] for k, v in (acc or {}).items()}

    def values(self, d, cap: int) -> list[float]:
        """[f(0), f(1), ..., f(cap)] for a prompt with difficulty d."""
        if self.kind == "best_of_b":
            return [best_of_b(d.p_hat, b) for b in range(cap + 1)]
        table = self.acc.get(int(d.bin))
        if table is None:  # a bin the bank never saw: the nearest fitted bin
            near = min(self.acc, key=lambda k: (abs(k - int(d.bin)), k))
            table = self.acc[near]
        return [0.0] + [table[min(b, len(table)) - 1] for b in range(1, cap + 1)]

    def to_yaml(self):
        if self.kind == "best_of_b":
            return "best_of_b"
        return {"kind": "majority", "acc": {k: [round(x, 6) for x in v] for k, v in sorted(self.acc.items())}}


@dataclass(frozen=True)
class BestOfBCurve:
    kind: Literal["best_of_b"] = "best_of_b"


Accuracies = Annotated[list[Annotated[float, between(0, 1)]], non_empty]


@dataclass(frozen=True, kw_only=True)
class MajorityCurve:
    """`curve: {kind: majority, acc: {bin: [acc at b=1, b=2, ...]}}` (the tuner writes it)."""
    kind: Literal["majority"] = "majority"
    acc: dict[Annotated[int, at_least(0)], Accuracies] = option(check=non_empty)


CurveSpec = Literal[CURVES] | BestOfBCurve | MajorityCurve  # type: ignore[valid-type]


def curve_from_spec(spec: CurveSpec) -> Curve:
    """The Curve a policy file's `curve:` names; 'majority' without its fitted table is an error."""
    if spec == "majority":
        raise Invalid("curve", "'majority' needs a fitted table: curve: {kind: majority, acc: {bin: [acc at b=1, "
                               "b=2, ...]}} (the tuner writes it)")
    if isinstance(spec, MajorityCurve):
        return Curve("majority", spec.acc)
    return Curve("best_of_b")


def fit_majority_table(acc_by_n: np.ndarray, bins: Sequence[int]) -> dict[int, list[float]]:
    """acc_by_n[i, n-1] = prompt i's expected majority accuracy with n samples -> per-bin mean curves."""
    acc_by_n = np.asarray(acc_by_n, dtype=float)
    bins = np.asarray(list(bins), dtype=int)
    return {int(b): acc_by_n[bins == b].mean(axis=0).tolist() for b in sorted(set(bins.tolist()))}
