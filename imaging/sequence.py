"""The closed vocabulary of MR sequence classes that leukotrack distinguishes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SequenceClass"]


class SequenceClass(StrEnum):
    """What a series shows, as far as lesion follow-up is concerned.

    Strings are accepted at the edges: ``SequenceClass("flair")`` and ``SequenceClass("FLAIR")`` both
    work.
    """

    DWI = "DWI"
    ADC = "ADC"
    FLAIR = "FLAIR"
    #: T1-weighted anatomy (MPRAGE, SPGR/FLASH, T1 spin echo): an optional input of lesion engines.
    T1 = "T1"
    OTHER = "OTHER"

    @classmethod
    def _missing_(cls, value: object) -> SequenceClass | None:
        if isinstance(value, str):
            upper = value.upper()
            for member in cls:
                if member.value == upper:
                    return member
        return None
