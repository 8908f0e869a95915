"""Demand patterns by the Syntetos-Boylan-Croston scheme: the average demand interval (ADI) and the
squared coefficient of variation of the non-zero demand sizes (CV²).

ADI < 1.32 means demand on most days (smooth, or erratic when sizes vary a lot, CV² ≥ 0.49);
otherwise days without demand are common (intermittent, or lumpy when sizes vary a lot). Smooth and
erratic series are forecast with exponential smoothing; intermittent and lumpy ones with methods
built for many zeros (Croston SBA, TSB, ADIDA).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike

ADI_CUT = 1.32
CV2_CUT = 0.49


class Pattern(StrEnum):
    SMOOTH = "smooth"
    ERRATIC = "erratic"
    INTERMITTENT = "intermittent"
    LUMPY = "lumpy"

    @property
    def intermittent(self) -> bool:
        """True when days without demand are common: the family of models for intermittent demand applies."""
        return self in (Pattern.INTERMITTENT, Pattern.LUMPY)


@dataclass(frozen=True)
class Profile:
    adi: float
    cv2: float
    pattern: Pattern


def classify(quantities: ArrayLike) -> Profile:
    """The series' ADI, CV² and pattern; a series with a single demand (or none) is intermittent."""
    y = np.asarray(quantities, dtype=float)
    sizes = y[y > 0]
    if len(sizes) == 0:
        return Profile(adi=float("inf"), cv2=0.0, pattern=Pattern.INTERMITTENT)
    adi = len(y) / len(sizes)
    cv2 = float((sizes.std() / sizes.mean()) ** 2) if len(sizes) > 1 else 0.0
    if adi < ADI_CUT:
        pattern = Pattern.SMOOTH if cv2 < CV2_CUT else Pattern.ERRATIC
    else:
        pattern = Pattern.INTERMITTENT if cv2 < CV2_CUT else Pattern.LUMPY
    return Profile(adi=float(adi), cv2=cv2, pattern=pattern)
