"""DICOM SEG output: exact round trips on an oblique, anisotropic phantom series and on the sample
case's sessions (every segment read back with highdicom equals the NIfTI mask), source references,
coded concepts, Tracking IDs and UIDs that hold across sessions, and a DICOM validator's verdict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import highdicom as hd
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.uid import generate_uid

from followup.dicom_seg import orig_lesion_labels
from imaging.dicom.files import iter_files
from imaging.dicom.seg import (
    LesionSegment,
    SegReferenceError,
    lesion_segmentation,
    source_datasets,
    stable_uid,
)
from imaging.dicom.series import load_series_folder
from imaging.image import MRImage
from tests.dicom_factory import Phantom, phantom_volume, rotation

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def dciodvfy_errors(path: Path) -> list[str]:
    """The error lines of dicom3tools' IOD validator (skips when it is not installed, except in CI)."""
    if shutil.which("dciodvfy") is None:
        if os.environ.get("LEUKOTRACK_REQUIRE_DCIODVFY") == "1":
            pytest.fail("dciodvfy (Debian package dicom3tools) is required in CI")
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    report = subprocess.run(
        ["dciodvfy", "-new", str(path)], capture_output=True, text=True, check=False
    )
    return [line for line in (report.stdout + report.stderr).splitlines() if "Error" in line]


def labels_on_grid(seg: hd.seg.Segmentation, affine_ras: NDArray[Any], shape: tuple[int, ...]):
    """Read a SEG back onto a NIfTI grid: segment number per voxel (0 = none).

    Independent of how the SEG was built: every frame is placed by its own plane position,
    orientation and pixel spacing (pydicom attributes), pixel (r, c) at position + c * column
    spacing * row cosine + r * row spacing * column cosine, mapped to voxel indices through the
    grid's affine. Raises if a frame pixel falls off the grid or between voxels, or two segments
    claim a voxel.
    """
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    spacing = np.array(shared.PixelMeasuresSequence[0].PixelSpacing, float)
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    to_index = np.linalg.inv(affine_ras) @ LPS_TO_RAS
    out = np.zeros(shape, np.uint16)
    for frame, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        identification = item.get("SegmentIdentificationSequence") or shared.get(
            "SegmentIdentificationSequence"
        )  # shared when the object has one segment
        number = int(identification[0].ReferencedSegmentNumber)
        position = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        rows, columns = np.nonzero(pixels[frame])
        points = (
            position[:, None]
            + orientation[:3, None] * columns * spacing[1]
            + orientation[3:, None] * rows * spacing[0]
        )
        index = (to_index @ np.vstack([points, np.ones(points.shape[1])]))[:3]
        voxel = np.rint(index).astype(int)
        assert np.abs(index - voxel).max(initial=0) < 1e-3, "a SEG pixel lies between voxels"
        assert ((voxel >= 0) & (voxel < np.array(shape)[:, None])).all(), "a SEG pixel is off grid"
        claimed = out[tuple(voxel)]
        assert not claimed.any(), "two segments claim one voxel"
        out[tuple(voxel)] = number
    return out


def _phantom(tmp_path: Path) -> tuple[Phantom, MRImage, list[pydicom.Dataset]]:
    matrix = rotation(12, -7, 20)
    phantom = Phantom(
        data=phantom_volume((11, 8, 6)),
        row_cosine=matrix[:, 0],
        column_cosine=matrix[:, 1],
        pixel_spacing=(0.9, 0.7),
        slice_spacing=3.3,
        origin_lps=(-31.5, 12.25, 40.0),
        headers={"FrameOfReferenceUID": generate_uid()},
    )
    paths = phantom.write(tmp_path / "flair")
    return phantom, load_series_folder(tmp_path / "flair"), source_datasets(paths)


def _three_lesions(shape: tuple[int, ...]) -> NDArray[np.uint16]:
    labels = np.zeros(shape, np.uint16)
    labels[1:4, 2:5, 1:3] = 1
    labels[7:10, 1:2, 2] = 2  # one slice only
    labels[5, 6, 4:6] = 3  # two voxels through two slices
    return labels


def _segments(count: int) -> list[LesionSegment]:
    return [
        LesionSegment(f"F{n:03d}", "flair", f"F{n:03d}", stable_uid("case", f"F{n:03d}"))
        for n in range(1, count + 1)
    ]


def _build(labels: MRImage, sources: list[pydicom.Dataset]) -> hd.seg.Segmentation:
    """A SEG of ``labels`` (values 1..N) with N tracked FLAIR lesion segments."""
    return lesion_segmentation(
        labels,
        _segments(int(np.asarray(labels.data).max())),
        sources,
        series_number=9901,
        series_description="leukotrack FLAIR lesions (research use)",
        software_version="test",
        uid_parts=("test",),
    )


def test_phantom_seg_round_trip_is_exact_and_references_every_source_plane(tmp_path):
    _, image, sources = _phantom(tmp_path)
    labels = _three_lesions(image.shape)
    seg = _build(image.with_data(labels, sequence="OTHER"), sources)
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    back = hd.seg.segread(path)
    np.testing.assert_array_equal(labels_on_grid(back, image.affine, image.shape), labels)
    # highdicom's own reading, by source image: frame k of the stack is the source at slice k
    by_position = sorted(
        sources,
        key=lambda d: float(
            np.dot(
                d.ImagePositionPatient,
                np.cross(*np.reshape(np.asarray(d.ImageOrientationPatient, float), (2, 3))),
            )
        ),
    )
    stacked = back.get_pixels_by_source_instance(
        [d.SOPInstanceUID for d in by_position],
        segment_numbers=[1, 2, 3],
        combine_segments=True,
        relabel=False,
    )
    np.testing.assert_array_equal(stacked.transpose(2, 1, 0), labels)
    assert set(back.get_tracking_ids()) == {(s.tracking_id, s.tracking_uid) for s in _segments(3)}
    assert back.get_segment_numbers(tracking_id="F002") == [2]
    description = back.get_segment_description(2)
    assert description.segmented_property_category.value == "49755003"  # morph. abnormal structure
    assert description.segmented_property_type.value == "52988006"  # lesion
    assert description.anatomic_regions[0].value == "68523003"  # cerebral white matter
    assert description.algorithm_type.value == "AUTOMATIC"
    assert description.algorithm_identification[0].AlgorithmName.startswith("leukotrack")
    assert back.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert back.StudyInstanceUID == sources[0].StudyInstanceUID
    assert back.PatientID == "PH001"
    assert dciodvfy_errors(path) == []


def test_a_mask_off_the_source_grid_is_refused(tmp_path):
    _, image, sources = _phantom(tmp_path)
    shifted = image.affine.copy()
    shifted[:3, 3] += 0.5 * image.affine[:3, 2]  # half a slice along the normal
    moved = MRImage(_three_lesions(image.shape), shifted, sequence="OTHER")
    with pytest.raises(SegReferenceError, match="lie on no plane of the source series"):
        _build(moved, sources)


def test_labels_and_segments_must_match():
    image = MRImage(np.ones((2, 3, 4), np.uint16) * 2, np.eye(4), sequence="OTHER")
    with pytest.raises(ValueError, match="labels go up to 2 but 1 segments"):
        lesion_segmentation(
            image,
            _segments(1),
            [],
            series_number=1,
            series_description="x",
            software_version="t",
            uid_parts=(),
        )


def test_orig_labels_follow_the_baseline_labels_fill_gaps_and_keep_untracked_voxels():
    from imaging.track import TrackedSession

    # session grid 1 x 1 x 2 mm, baseline grid 2 x 2 x 2 mm shifted by a known translation
    session = np.diag([1.0, 1.0, 2.0, 1.0])
    mask = np.zeros((12, 10, 5), np.uint8)
    mask[2:6, 2:6, 1:3] = 1  # lesion A (tracked as 4)
    mask[6, 2:6, 1:3] = 1  # A's edge, outside the baseline label (a gap to fill)
    mask[9:11, 7:9, 3] = 1  # lesion B: no baseline label (untracked)
    baseline = np.diag([2.0, 2.0, 2.0, 1.0])
    baseline[:3, 3] = (10.0, 0.0, 0.0)
    tracked = np.zeros((8, 8, 6), np.uint16)
    # session world x 2..5 -> baseline world (shift +10) 12..15 -> baseline voxel (x-10)/2 = 1..2.5
    tracked[1:3, 1:3, 1:3] = 4
    to_baseline = np.eye(4)
    to_baseline[0, 3] = 10.0
    session_mask = MRImage(mask, session, sequence="OTHER")
    labels, numbers, untracked = orig_lesion_labels(
        session_mask,
        TrackedSession("ses-2", MRImage(tracked, baseline, sequence="OTHER"), None),
        to_baseline,
    )
    assert numbers == [4] and untracked
    expected = np.zeros_like(labels)
    expected[2:7, 2:6, 1:3] = 4
    np.testing.assert_array_equal(labels, expected)
    assert ((labels > 0) | (mask > 0)).sum() == mask.sum()  # labels stay inside the mask


# --- the sample case, analysed once (conftest.analyzed_samples) -------------------------------


def _series_uid(folder: str) -> str:
    first = next(iter_files(Path(folder)))
    return str(pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID)


@pytest.mark.slow
def test_sample_case_segs_equal_the_nifti_masks_with_tracking_across_sessions(analyzed_samples):
    import json

    case = analyzed_samples / "sub-indexcase"
    provenance = json.loads((case / "provenance.json").read_text())
    lesions = pd.read_csv(case / "lesions.tsv", sep="\t")
    segs = sorted(case.glob("ses-*/*_seg.dcm"))
    assert len(segs) == 9  # FLAIR lesions in 5 sessions, DWI lesions in 4 (none on day 165)
    tracking_uids: dict[str, set[str]] = {}
    for path in segs:
        session = path.parent.name
        source = "dwi" if "desc-dwilesions" in path.name else "flair"
        kind = "dwi" if source == "dwi" else "anat"
        mask_path = next((path.parent / kind).glob(f"*_space-orig_desc-{source}lesion_mask.nii.gz"))
        mask = nib.load(mask_path)
        seg = hd.seg.segread(path)
        on_grid = labels_on_grid(seg, mask.affine, mask.shape)
        # the segments together are the NIfTI mask, voxel for voxel
        np.testing.assert_array_equal(on_grid > 0, np.asarray(mask.dataobj) > 0)
        ids = dict(seg.get_tracking_ids())
        expected = lesions[
            (lesions.session_id == session) & (lesions.source == source) & (lesions.volume_ml > 0)
        ]
        assert set(ids) == set(expected.lesion_id), (path.name, ids)
        for number in seg.get_segment_numbers():
            assert (on_grid == number).any(), f"{path.name}: segment {number} is empty"
        for lesion_id, uid in ids.items():
            tracking_uids.setdefault(lesion_id, set()).add(uid)
        # it references the series the mask was drawn on, plane by plane
        series = provenance["sessions"][session]["sources"][source]
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == _series_uid(series)
        assert all(f.get("DerivationImageSequence") for f in seg.PerFrameFunctionalGroupsSequence)
        assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
        # the engine that drew the lesions identifies the algorithm, with its version and parameters
        engine = provenance["engines"][source]
        for segment in seg.SegmentSequence:
            algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
            assert algorithm.AlgorithmName == f"leukotrack {engine['name']}"
            assert algorithm.AlgorithmVersion.startswith(engine["version"])
            assert "AlgorithmParameters" in algorithm
        assert dciodvfy_errors(path) == []
    # one Tracking UID per lesion, the same in every session it appears in
    assert all(len(uids) == 1 for uids in tracking_uids.values()), tracking_uids
    assert len({next(iter(u)) for u in tracking_uids.values()}) == len(tracking_uids)
    assert {"F001", "F003", "D001", "D002"} <= set(tracking_uids)


@pytest.fixture(scope="module")
def analyzed_nifti_case(sample_case: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two lesion sessions of the sample case (day 3 and day 8) converted to the BIDS-like NIfTI
    layout, analysed: the same lesions as the DICOM case, but no DICOM to reference."""
    from followup.analyze import analyze_case
    from imaging.case import scan_case
    from imaging.nifti import save_nifti

    root = tmp_path_factory.mktemp("nifti") / "niftipatient"
    lines = ["session_id\tacq_time"]
    for session in scan_case(sample_case).sessions[1:3]:
        label = f"ses-{session.study_date.strftime('%Y%m%d')}"
        for kind, folder, suffix in (
            ("FLAIR", "anat", "FLAIR"),
            ("DWI", "dwi", "dwi"),
            ("ADC", "dwi", "ADC"),
        ):
            image = session.pick(kind).load()
            save_nifti(image, root / label / folder / f"sub-x_{label}_{suffix}.nii.gz")
        lines.append(f"{label}\t{session.study_date.isoformat()}")
    (root / "sessions.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("nifti_out")
    analyze_case(root, out)
    return out / "sub-niftipatient"


@pytest.mark.slow
def test_clinical_only_and_nifti_cases_write_no_seg(analyzed_samples, analyzed_nifti_case):
    assert not list((analyzed_samples / "sub-cnsmyeloma").rglob("*.dcm"))
    # the NIfTI case has lesion masks that a DICOM case would have as SEG objects, and no SEG
    provenance = json.loads((analyzed_nifti_case / "provenance.json").read_text())
    assert provenance["layout"] == "nifti"
    masks = sorted(analyzed_nifti_case.glob("ses-*/*/*_space-orig_desc-*lesion_mask.nii.gz"))
    assert len(masks) == 4, masks  # FLAIR and DWI masks of both sessions
    assert all(np.asarray(nib.load(m).dataobj).any() for m in masks), "a mask without a lesion"
    assert not list(analyzed_nifti_case.rglob("*.dcm"))
    assert "dicom_seg_notes" not in provenance


@pytest.mark.realdata
@pytest.mark.parametrize(
    "folder",
    ["siemens_xa30/classic_adc", "siemens_xa30/enhanced_adc", "siemens_xa30/enhanced_tracew"],
)
def test_seg_on_real_scanner_series_round_trips(realdata, folder, tmp_path):
    """Real headers: one file per slice, and Siemens XA multi-frame files with per-frame geometry."""
    image = load_series_folder(realdata / folder)
    if image.n_volumes > 1:
        image = image.volume(image.n_volumes - 1)
    shape = image.shape[:3]
    labels = np.zeros(shape, np.uint16)
    labels[10:20, 30:41, 5:9] = 1  # a box across four slices, off the centre
    labels[50:53, 12:14, shape[2] - 3] = 2
    seg = _build(
        image.with_data(labels, sequence="OTHER", bvals_s_mm2=None),
        source_datasets(sorted(iter_files(realdata / folder))),
    )
    path = tmp_path / "seg.dcm"
    seg.save_as(path)
    back = hd.seg.segread(path)
    np.testing.assert_array_equal(labels_on_grid(back, image.affine, shape), labels)
    assert dciodvfy_errors(path) == []
