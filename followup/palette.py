"""One colour per drug, lesion source and event, for every figure (dashboard and report).

A drug keeps its colour from case to case and page to page: the drugs of the field have fixed
colours, and any other drug takes one from the fallback list by a stable hash of its name (never by
its position in a case's list, which changed it from one case to the next).
"""

from __future__ import annotations

import hashlib

__all__ = ["EVENT_COLOURS", "SOURCE_COLOURS", "drug_colour"]

#: Lesion sources: FLAIR orange, DWI blue (the viewer's overlays use the same hues).
SOURCE_COLOURS = {"flair": "#e08a00", "dwi": "#0090c8"}
#: Events drawn as lines through every panel.
EVENT_COLOURS = {
    "symptom_onset": "#d62728",
    "admission": "#7f7f7f",
    "drug_stop": "#000000",
    "csf_tap": "#2ca02c",
}
_KNOWN = {
    "daratumumab": "#6a3d9a",
    "lenalidomide": "#33a02c",
    "dexamethasone": "#b15928",
    "methotrexate": "#1f78b4",
    "cytarabine": "#e31a1c",
    "pomalidomide": "#ff7f00",
    "bortezomib": "#a6761d",
    "carfilzomib": "#1b9e77",
    "ifosfamide": "#e7298a",
    "fluorouracil": "#66a61e",
    "capecitabine": "#7570b3",
}
_FALLBACK = ("#8c564b", "#17becf", "#bcbd22", "#9467bd", "#e377c2", "#7f7f7f", "#d95f02")


def drug_colour(drug: str) -> str:
    """The drug's colour (hex), the same everywhere.

    >>> drug_colour("Daratumumab"), drug_colour("daratumumab ")
    ('#6a3d9a', '#6a3d9a')
    >>> drug_colour("some new drug") == drug_colour("some new drug")
    True
    """
    name = drug.strip().lower()
    if name in _KNOWN:
        return _KNOWN[name]
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return _FALLBACK[digest[0] % len(_FALLBACK)]
