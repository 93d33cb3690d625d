"""The one verdict rule of fit, plan, train, report and check (docs/formulas.md, "Verdict").

headroom = available − required; uncertainty = Σ band × bytes over the terms. "fits" when the
headroom covers the uncertainty, "tight" when it is not negative but smaller than the uncertainty
(the estimate cannot tell), "does not fit" below zero.
"""

from __future__ import annotations

from typing import Literal

Verdict = Literal["fits", "tight", "does not fit"]


def verdict_of(headroom: int, uncertainty: int) -> Verdict:
    if headroom < 0:
        return "does not fit"
    return "fits" if headroom >= uncertainty else "tight"
