"""`esc`: Early-stopping Self-Consistency (Li et al. 2024, "Escape Sky-high Cost: Early-stopping
Self-Consistency for Multi-step Reasoning", ICLR).

Samples are cut into consecutive windows [0, w), [w, 2w), ...; sampling stops at the first complete
window whose w answers are all the same real answer (zero entropy within the window). A window with
any None is not unanimous.

Every complete window is checked, not only the latest: when waves are aligned with w (the paper's
setting) the two are the same, since the rule would have stopped at the earlier window; when a wave
spans several windows, ESC would have stopped at the first unanimous one, so we stop too.
"""
from __future__ import annotations

from typing import Sequence

from ..errors import InputError
from .base import SampleView, as_views, check_int


def unanimous_window(samples: Sequence[SampleView], window: int) -> int | None:
    """Index of the first complete window that is unanimous on a real answer, or None."""
    for k in range(len(samples) // window):
        answers = {s.answer for s in samples[k * window:(k + 1) * window]}
        if len(answers) == 1 and None not in answers:
            return k
    return None


def esc_expected_samples(p: Sequence[float], window: int, max_samples: int) -> float:
    """Expected number of samples ESC draws for one question, in closed form.

    p: probabilities of the real answers (1 - sum(p) is the mass of 'no answer'). A window is
    unanimous with probability q = sum_i p_i^w, independently across windows. With K = max_samples // w
    windows and r = max_samples - K*w leftover samples (drawn only if no window stopped):
        E[N] = w * sum_{k=0}^{K-1} (1 - q)^k + r * (1 - q)^K
    which is w * sum_{k<K} (1 - q)^k when w divides max_samples.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InputError(f"window={window!r}: must be an integer >= 1")
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 0:
        raise InputError(f"max_samples={max_samples!r}: must be an integer >= 0")
    if any(not 0.0 <= x <= 1.0 for x in p) or sum(p) > 1.0 + 1e-9:
        raise InputError(f"p={list(p)!r}: entries must be in [0, 1] and sum to at most 1")
    q = sum(float(x) ** window for x in p)
    k_windows, rest = divmod(max_samples, window)
    miss = 1.0 - q
    full = sum(miss ** k for k in range(k_windows))
    return window * full + rest * miss ** k_windows


class ESCRule:
    name = "esc"

    def __init__(self, window: int = 8):
        self.window = check_int(self.name, "window", window)

    def should_stop(self, samples: Sequence[SampleView | str | None]) -> bool:
        samples = as_views(samples)
        return unanimous_window(samples, self.window) is not None
