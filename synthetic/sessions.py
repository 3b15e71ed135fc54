"""Per-session plan: date, vendor and encoding quirks, head poses and slice-stack planning."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from synthetic.fields import rng_for
from synthetic.geometry import (
    SliceGrid,
    make_grid,
    make_grid_lps,
    rigid_transform,
    rotation_matrix,
)

#: Day 0 of the index case (the MRI the day after admission).
DAY0 = date(2023, 3, 14)
#: Template point the head rotates about (about the centre of the brain), MNI mm.
HEAD_CENTRE_MNI = (0.0, -18.0, 12.0)
#: Template point the technologist centres the FLAIR and DWI stacks on, MNI mm.
SLAB_CENTRE_MNI = (0.0, -16.0, 8.0)


@dataclass
class SessionPlan:
    """Everything decided about one session before simulation.

    Attributes
    ----------
    index, day : int
        Session index (0-based) and day after day 0.
    study_date : datetime.date
        StudyDate.
    study_time : str
        StudyTime ``HHMMSS.ffffff``.
    vendor : str
        ``"siemens"``, ``"ge"`` or ``"siemens_xa"`` (enhanced multi-frame).
    transfer_syntax : dict
        Transfer syntax UID per series kind.
    gzip_kinds : tuple of str
        Series kinds whose files are stored gzipped (``*.dcm.gz``).
    b_value_tags : tuple of str
        Classic-file b-value tags (see :class:`synthetic.dicom_writer.Series`).
    oblique : bool
        Whether the stacks are angulated to the head (ImageOrientationPatient not axial).
    gsps : bool
        Whether the study also holds a presentation state.
    quirks : list of str
        Human-readable list of what this session exercises in a loader.
    """

    index: int
    day: int
    study_date: date
    study_time: str
    vendor: str
    transfer_syntax: dict[str, str]
    gzip_kinds: tuple[str, ...] = ()
    b_value_tags: tuple[str, ...] = ("standard", "siemens")
    oblique: bool = False
    gsps: bool = False
    quirks: list[str] = field(default_factory=list)
    pose_flair: np.ndarray = field(default_factory=lambda: np.eye(4))
    pose_dwi: np.ndarray = field(default_factory=lambda: np.eye(4))
    grid_rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    slab_offset_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))


def _profile(index: int) -> dict:
    """Vendor and encoding profile of the n-th session (cycles every five sessions)."""
    explicit = ExplicitVRLittleEndian
    ts = {"localizer": explicit, "flair": explicit, "dwi": explicit, "adc": explicit}
    k = index % 5
    if k == 0:
        return {
            "vendor": "siemens",
            "transfer_syntax": {**ts, "localizer": ImplicitVRLittleEndian},
            "gsps": True,
            "quirks": [
                "Siemens classic, one file per image; b=0 and b=1000 in one series",
                "b-value in (0018,9087) and Siemens (0019,100C)",
                "localizer in Implicit VR Little Endian",
                "a Grayscale Softcopy Presentation State (no pixels) in the study",
                "straight axial stacks",
            ],
        }
    if k == 1:
        return {
            "vendor": "siemens",
            "transfer_syntax": {**ts, "flair": JPEG2000Lossless},
            "oblique": True,
            "quirks": [
                "Siemens classic",
                "FLAIR JPEG 2000 lossless compressed",
                "oblique (angulated) stacks: ImageOrientationPatient not axial",
            ],
        }
    if k == 2:
        return {
            "vendor": "siemens",
            "transfer_syntax": {**ts, "dwi": RLELossless},
            "gzip_kinds": ("adc",),
            "b_value_tags": ("siemens",),
            "quirks": [
                "Siemens classic",
                "DWI RLE lossless compressed",
                "b-value only in Siemens private (0019,100C), no (0018,9087)",
                "ADC series files gzipped (IMxxxxxx.dcm.gz), not listed in DICOMDIR",
            ],
        }
    if k == 3:
        return {
            "vendor": "ge",
            "transfer_syntax": {
                **ts,
                "flair": JPEG2000Lossless,
                "dwi": JPEG2000Lossless,
                "adc": JPEG2000Lossless,
            },
            "oblique": True,
            "b_value_tags": ("standard_nonzero", "ge"),
            "quirks": [
                "GE classic, signed 16-bit pixels (PixelRepresentation 1)",
                "b-value in GE private (0043,1039) first value; (0018,9087) absent on b=0",
                "DWI files ordered slice by slice (b=0, b=1000 per position), descending",
                "ADC stored with RescaleSlope 0.001: rescaled values in 1e-3 mm2/s",
                "FLAIR, DWI and ADC JPEG 2000 lossless (as exported by the PACS)",
                "oblique stacks",
            ],
        }
    return {
        "vendor": "siemens_xa",
        "transfer_syntax": ts,
        "oblique": True,
        "quirks": [
            "Siemens XA Enhanced MR Image Storage: one multi-frame file per series",
            "DWI: b=0 and b=1000 frames in one file; b-value per frame in MRDiffusionSequence,"
            " volume in TemporalPositionIndex (dimension index as Siemens XA)",
            "shared functional groups: pixel measures, rescale (PixelValueTransformation);"
            " plane position and orientation per frame",
            "localizer: one multi-frame file with three orientations (per-frame orientation)",
            "oblique stacks",
        ],
    }


def plan_sessions(seed: int, days: tuple[int, ...]) -> list[SessionPlan]:
    """Plan all sessions of a case: dates, vendors, quirks and true head poses.

    Parameters
    ----------
    seed : int
        Case seed.
    days : tuple of int
        Days after day 0 (ascending).

    Returns
    -------
    list of SessionPlan
    """
    plans = []
    for i, day in enumerate(days):
        rng = rng_for(seed, "session", i)
        prof = _profile(i)
        minutes = int(rng.integers(7 * 60 + 30, 17 * 60 + 30))
        seconds = int(rng.integers(0, 60))
        millis = int(rng.integers(0, 1000))
        study_time = f"{minutes // 60:02d}{minutes % 60:02d}{seconds:02d}.{millis:03d}000"
        angles = (
            float(np.clip(rng.normal(0.0, 3.0), -6, 6)),
            float(np.clip(rng.normal(0.0, 1.5), -3, 3)),
            float(np.clip(rng.normal(0.0, 2.5), -5, 5)),
        )
        head_at = np.array([rng.normal(0.0, 2.0), rng.normal(-6.0, 3.0), rng.normal(4.0, 3.0)])
        translation = head_at - np.asarray(HEAD_CENTRE_MNI)
        tx, ty, tz = (float(v) for v in translation)
        pose = rigid_transform(angles, (tx, ty, tz), HEAD_CENTRE_MNI)
        # small extra motion between the FLAIR and the DWI (<= 1 mm, <= 1 degree)
        dx, dy, dz = (float(v) for v in np.clip(rng.normal(0.0, 0.4, 3), -1.0, 1.0))
        d_ang = (dx, dy, dz)
        d_tr = rng.normal(0.0, 0.4, 3)
        d_tr *= min(1.0, 0.95 / max(float(np.linalg.norm(d_tr)), 1e-9))
        head_scanner = pose[:3, :3] @ np.asarray(HEAD_CENTRE_MNI) + pose[:3, 3]
        motion = rigid_transform(
            d_ang,
            (float(d_tr[0]), float(d_tr[1]), float(d_tr[2])),
            (float(head_scanner[0]), float(head_scanner[1]), float(head_scanner[2])),
        )
        if prof.get("oblique"):
            # technologist angulates the stack to the head (pitch and yaw), imperfectly
            grid_rot = rotation_matrix(
                (angles[0] + float(rng.normal(0.0, 1.5)), 0.0, 0.8 * angles[2] + 2.0)
            )
        else:
            grid_rot = np.eye(3)
        plans.append(
            SessionPlan(
                index=i,
                day=int(day),
                study_date=DAY0 + timedelta(days=int(day)),
                study_time=study_time,
                vendor=prof["vendor"],
                transfer_syntax=prof["transfer_syntax"],
                gzip_kinds=prof.get("gzip_kinds", ()),
                b_value_tags=prof.get("b_value_tags", ("standard", "siemens")),
                oblique=prof.get("oblique", False),
                gsps=prof.get("gsps", False),
                quirks=prof["quirks"],
                pose_flair=pose,
                pose_dwi=motion @ pose,
                grid_rotation=grid_rot,
                slab_offset_mm=rng.normal(0.0, 1.5, 3),
            )
        )
    return plans


def plan_grids(plan: SessionPlan) -> dict[str, list[SliceGrid]]:
    """Slice stacks of a session, planned on the head as seen in the localizer.

    Returns
    -------
    dict
        ``"flair"``, ``"dwi"``: one grid each; ``"localizer"``: sagittal, coronal, axial.
    """
    centre = plan.pose_flair[:3, :3] @ np.asarray(SLAB_CENTRE_MNI) + plan.pose_flair[:3, 3]
    centre = centre + plan.slab_offset_mm
    flair = make_grid(centre, plan.grid_rotation, 256, 208, 26, 0.9, 5.0, 6.5)
    dwi = make_grid(centre, plan.grid_rotation, 128, 128, 25, 1.8, 5.0, 6.5)
    iso = np.array([0.0, 0.0, 0.0])
    loc = [
        make_grid_lps(iso, [0, 1, 0], [0, 0, -1], 128, 128, 1, 2.0, 7.0, 7.0),  # sagittal
        make_grid_lps(iso, [1, 0, 0], [0, 0, -1], 128, 128, 1, 2.0, 7.0, 7.0),  # coronal
        make_grid_lps(
            iso + np.array([0.0, 0.0, 20.0]), [1, 0, 0], [0, 1, 0], 128, 128, 1, 2.0, 7.0, 7.0
        ),
    ]
    return {"flair": [flair], "dwi": [dwi], "localizer": loc}
