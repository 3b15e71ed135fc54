"""b-values from every place vendors put them (DESIGN.md §4).

Order of trust: the standard (0018,9087) (per frame in MRDiffusionSequence for enhanced files), then the
vendor tags: Siemens (0019,100C) and the CSA image header, GE (0043,1039) first value, Philips (2001,1003),
UIH (0065,1009) (private creator "Image Private Header": an effective b-value, e.g. 1.25 s/mm2 for the
b=0 volume, kept as the scanner gives it, as dcm2niix does). GE's b=0 images have no (0018,9087) at
all, so the vendor tag must be read too.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

__all__ = ["b_value_s_mm2", "frame_b_value", "private_tag"]

log = logging.getLogger(__name__)

_STANDARD = Tag(0x0018, 0x9087)
#: (group, element offset, private creator, name) of vendor b-value tags.
_PRIVATE_TAGS: tuple[tuple[int, int, str, str], ...] = (
    (0x0019, 0x0C, "SIEMENS MR HEADER", "Siemens (0019,100C)"),
    (0x0043, 0x39, "GEMS_PARM_01", "GE (0043,1039)"),
    (0x2001, 0x03, "Philips Imaging DD 001", "Philips (2001,1003)"),
    (0x0065, 0x09, "Image Private Header", "UIH (0065,1009)"),  # what UIH scanners write
    (0x0065, 0x09, "United Imaging Healthcare", "UIH (0065,1009)"),
)
#: GE adds 1e9 (and multiples) to the b-value in (0043,1039) on some software versions.
_GE_OFFSET = 1_000_000_000


def _number(value: Any) -> float | None:
    """First number of a DICOM value (int, float, multi-value, or raw bytes of an UN element)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        text = value.decode("ascii", errors="ignore").strip("\x00 ")
        if not text:
            # An FD/FL 0.0 read as UN is all zero bytes; blanks are no value at all.
            return 0.0 if len(value) in (4, 8) and not value.strip(b"\x00") else None
        if "\\" in text:
            text = text.split("\\")[0]
        try:
            return float(text)
        except ValueError:
            return _binary_number(value)
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return _number(value[0]) if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _binary_number(raw: bytes) -> float | None:
    """A little-endian FD (8 bytes) or FL (4 bytes) number in an element read as UN."""
    import struct

    if len(raw) == 8:
        return float(struct.unpack("<d", raw)[0])
    if len(raw) == 4:
        return float(struct.unpack("<f", raw)[0])
    return None


def private_tag(dataset: Dataset, group: int, offset: int, creator: str) -> BaseTag | None:
    """The tag reserved by ``creator`` for ``offset`` in ``group`` (blocks 0x10-0x1F), if present.

    A file written without any private creator in ``group`` is read at the usual block 0x10; a block
    owned by another creator (GE also uses group 0019) is never read.
    """
    any_creator = False
    for element in range(0x10, 0x20):
        owner = dataset.get((group, element))
        if owner is None:
            continue
        any_creator = True
        value = owner.value
        if isinstance(value, bytes):
            value = value.decode("ascii", errors="ignore")
        if str(value).strip().upper() == creator.upper():
            tag = Tag(group, (element << 8) | offset)
            return tag if tag in dataset else None
    if any_creator:
        return None
    tag = Tag(group, 0x1000 | offset)
    return tag if tag in dataset else None


def _csa_b_value(dataset: Dataset) -> float | None:
    """B_value from the Siemens CSA image header (0029,1010), via nibabel's reader."""
    if Tag(0x0029, 0x1010) not in dataset:
        return None
    from nibabel.nicom import csareader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = csareader.get_csa_header(dataset, "image")
        return None if header is None else _number(csareader.get_b_value(header))
    except (csareader.CSAReadError, KeyError, TypeError, ValueError, IndexError) as error:
        log.debug("CSA header unreadable in %s: %s", dataset.get("filename", "?"), error)
        return None


def frame_b_value(
    frame_groups: Dataset, shared_groups: Sequence[Dataset] | None
) -> tuple[float | None, str] | None:
    """The b-value of one enhanced frame from MRDiffusionSequence (per frame, then shared).

    Returns ``None`` when neither holds a DiffusionBValue (the caller then tries the file-level tags).
    """
    for groups in (frame_groups, shared_groups[0] if shared_groups else None):
        if groups is None or "MRDiffusionSequence" not in groups:
            continue
        item = groups.MRDiffusionSequence[0]
        if _STANDARD in item:
            return _number(item[_STANDARD].value), "MRDiffusionSequence (0018,9087)"
    return None


def b_value_s_mm2(
    dataset: Dataset, frame_groups: Dataset | None = None
) -> tuple[float | None, str]:
    """The b-value of an image or frame in s/mm2, and which tag it came from.

    Parameters
    ----------
    dataset : Dataset
        The file's data set.
    frame_groups : Dataset, optional
        For enhanced (multi-frame) files: the frame's item of PerFrameFunctionalGroupsSequence.

    Returns
    -------
    (float or None, str)
        The b-value (``None`` when no tag holds one) and the tag's name (empty when none).

    Examples
    --------
    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset()
    >>> ds.DiffusionBValue = 1000.0
    >>> b_value_s_mm2(ds)
    (1000.0, '(0018,9087)')
    """
    if frame_groups is not None:
        found = frame_b_value(frame_groups, dataset.get("SharedFunctionalGroupsSequence"))
        if found is not None:
            return found
    if _STANDARD in dataset:
        value = _number(dataset[_STANDARD].value)
        if value is not None:
            return value, "(0018,9087)"
    for group, offset, creator, name in _PRIVATE_TAGS:
        tag = private_tag(dataset, group, offset, creator)
        if tag is None:
            continue
        value = _number(dataset[tag].value)
        if value is None:
            continue
        if group == 0x0043 and value >= _GE_OFFSET:
            value = value % _GE_OFFSET
        return value, name
    value = _csa_b_value(dataset)
    if value is not None:
        return value, "Siemens CSA header B_value"
    return None, ""
