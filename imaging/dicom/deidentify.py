"""De-identify DICOM objects with the Basic Application Level Confidentiality Profile (PS3.15 E.1).

The profile's action table (which attribute is removed, emptied, replaced with a dummy or given a
new UID) comes from ``dicomanonymizer`` (Kitware), which transcribes PS3.15 Table E.1-1 release by
release; :data:`PROFILE_RELEASE` names the release used. Three things are done here on top of it:

* the actions apply to every nested data set, not only the top level (a SEG repeats UIDs inside its
  referenced-series and per-frame derivation sequences);
* new UIDs come from one :class:`UidMap` per export, so references between the exported objects
  (a lesion's Tracking UID across sessions, the study shared by a session's objects) still hold,
  while nothing links them to the original UIDs (the new UIDs are random);
* sequences that must stay for the object to remain valid (Source Image Sequence, Referenced Image
  Sequence: "X/Z/U*") keep their items with the contained instance UIDs replaced, as the profile
  allows, instead of being emptied.

The patient becomes a pseudonym (Patient's Name and ID), Patient Identity Removed is ``YES`` and the
De-identification Method (Code Sequence) names the profile. Dates and times become dummy values;
private attributes are removed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from dicomanonymizer.dicomfields_selector import (
    dicom_anonymization_database_selector,
)
from dicomanonymizer.simpledicomanonymizer import initialize_actions
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

__all__ = ["PROFILE_RELEASE", "UidMap", "deidentify"]

#: The release of PS3.15 Table E.1-1 applied.
PROFILE_RELEASE = "dicomfields_2026c"
#: What De-identification Method says.
METHOD = "PS3.15 E.1 Basic Application Confidentiality Profile"
#: DICOM CID 7050: Basic Application Confidentiality Profile.
_BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

Action = Callable[[Dataset, Any], None]


class UidMap:
    """Original UID -> new random UID, one map per export (consistent across its objects)."""

    def __init__(self) -> None:
        self._new: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        """The new UID for ``uid`` (made on first sight)."""
        if uid not in self._new:
            self._new[uid] = str(generate_uid(prefix=None))
        return self._new[uid]

    @property
    def originals(self) -> frozenset[str]:
        """Every UID replaced so far."""
        return frozenset(self._new)


def _replace_uids(uids: UidMap) -> Action:
    def action(dataset: Dataset, tag: Any) -> None:
        element = dataset.get(tag)
        if element is None or element.VR != "UI" or not element.value:
            return
        if element.VM > 1:
            element.value = [uids(str(v)) for v in element.value]
        else:
            element.value = uids(str(element.value))

    return action


#: Dummy values of date and time attributes that must keep a value (dicomanonymizer writes year 1,
#: which validators reject as a date).
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000"}


def _empty(dataset: Dataset, tag: Any) -> None:
    """Z: a zero-length value (sequences keep no items)."""
    element = dataset.get(tag)
    if element is None:
        return
    element.value = Sequence([]) if element.VR == "SQ" else None


def _dummy_dates(action: Action) -> Action:
    """D on a date or time: dicomanonymizer's dummy, then a valid one."""

    def wrapped(dataset: Dataset, tag: Any) -> None:
        action(dataset, tag)
        element = dataset.get(tag)
        if element is not None and element.VR in _DUMMY and element.value:
            element.value = _DUMMY[element.VR]

    return wrapped


def _keep(dataset: Dataset, tag: Any) -> None:
    """Keep the sequence; its items are de-identified like any data set (UIDs replaced)."""


def _actions(uids: UidMap) -> dict[tuple[int, ...], Action]:
    tags = dicom_anonymization_database_selector(PROFILE_RELEASE)
    actions: dict[tuple[int, ...], Action] = initialize_actions(PROFILE_RELEASE)
    actions = {tag: _dummy_dates(action) for tag, action in actions.items()}
    actions.update({tuple(tag): _empty for tag in tags["Z_TAGS"] + tags["X_Z_TAGS"]})
    replace_uid = _replace_uids(uids)
    actions.update({tuple(tag): replace_uid for tag in tags["U_TAGS"]})
    actions.update({tuple(tag): _keep for tag in tags["X_Z_U_STAR_TAGS"]})
    return actions


def _data_sets(dataset: Dataset) -> Iterator[Dataset]:
    """``dataset`` and every item of its sequences, depth first (top level first)."""
    yield dataset
    for element in list(dataset):
        if element.VR == "SQ" and element.tag in dataset:
            for item in element.value:
                yield from _data_sets(item)


def _apply(dataset: Dataset, actions: dict[tuple[int, ...], Action]) -> None:
    singles = {tag: action for tag, action in actions.items() if len(tag) == 2}
    ranges = {tag: action for tag, action in actions.items() if len(tag) == 4}
    for item in _data_sets(dataset):
        for tag, action in singles.items():
            if tag in item:
                action(item, tag)
        for element in list(item):
            for (group, number, group_mask, number_mask), action in ranges.items():
                if (element.tag.group & group_mask) == (group & group_mask) and (
                    element.tag.element & number_mask
                ) == (number & number_mask):
                    action(item, (element.tag.group, element.tag.element))
                    break


def deidentify(dataset: Dataset, *, pseudonym: str, uids: UidMap) -> Dataset:
    """De-identify ``dataset`` in place (see the module docstring) and return it.

    Parameters
    ----------
    dataset : Dataset
        A DICOM object as read by pydicom (with its file meta information).
    pseudonym : str
        Patient's Name and Patient ID of the de-identified object (the export's case pseudonym).
    uids : UidMap
        The export's UID map.
    """
    _apply(dataset, _actions(uids))
    dataset.remove_private_tags()
    dataset.PatientName = f"{pseudonym}^"  # family name only (a bare name is the retired form)
    dataset.PatientID = pseudonym
    dataset.PatientIdentityRemoved = "YES"
    dataset.LongitudinalTemporalInformationModified = "REMOVED"
    dataset.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _BASIC_PROFILE_CODE
    dataset.DeidentificationMethodCodeSequence = Sequence([code])
    meta = getattr(dataset, "file_meta", None)
    if meta is not None:
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle"):
            if keyword in meta:
                delattr(meta, keyword)
    return dataset
