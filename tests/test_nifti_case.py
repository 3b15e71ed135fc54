"""The BIDS-like NIfTI case layout of DESIGN.md §3.2, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imaging.case import scan_case
from imaging.errors import NiftiLayoutError
from imaging.image import MRImage
from imaging.nifti import save_nifti
from imaging.sequence import SequenceClass

AFFINE_FLAIR = np.diag([0.9, 0.9, 5.0, 1.0])
AFFINE_DWI = np.diag([-1.8, 1.8, 5.0, 1.0])


def _write_case(root: Path, *, with_adc: bool = True) -> Path:
    ses1, ses2 = root / "ses-day0", root / "ses-day3"
    save_nifti(
        MRImage(np.ones((7, 8, 9), np.int16), AFFINE_FLAIR),
        ses1 / "anat" / "p_ses-day0_FLAIR.nii.gz",
    )
    dwi = MRImage(
        np.ones((5, 6, 4, 2), np.int16), AFFINE_DWI, sequence="DWI", bvals_s_mm2=[0, 1000]
    )
    save_nifti(dwi, ses1 / "dwi" / "p_ses-day0_dwi.nii.gz")
    if with_adc:
        adc = np.full((5, 6, 4), 0.75, np.float32)
        save_nifti(MRImage(adc, AFFINE_DWI), ses1 / "dwi" / "p_ses-day0_ADC.nii.gz")
    save_nifti(
        MRImage(np.ones((7, 8, 9), np.int16), AFFINE_FLAIR), ses2 / "anat" / "p_ses-day3_FLAIR.nii"
    )
    (root / "sessions.tsv").write_text(
        "session_id\tacq_time\nses-day3\t2023-03-17\nses-day0\t2023-03-14T09:30:00\n"
    )
    return root


def test_a_bids_like_case_is_indexed_in_time_order(tmp_path):
    case = scan_case(_write_case(tmp_path / "patient_7"))
    assert case.layout == "nifti"
    assert case.case_id == "patient7"
    assert [s.label for s in case.sessions] == ["ses-day0", "ses-day3"]
    first, second = case.sessions
    assert first.study_date.isoformat() == "2023-03-14"
    assert {s.sequence for s in first.series} == {
        SequenceClass.FLAIR,
        SequenceClass.DWI,
        SequenceClass.ADC,
    }
    assert [s.sequence for s in second.series] == [SequenceClass.FLAIR]  # FLAIR only is valid
    assert second.pick("DWI") is None
    dwi = first.pick("DWI").load()
    assert dwi.bvals_s_mm2 == (0.0, 1000.0) and dwi.shape == (5, 6, 4, 2)
    adc = first.pick("ADC").load()
    assert adc.acquisition.unit == "um2/s"
    assert float(adc.data.max()) == pytest.approx(750.0)


def test_a_dwi_without_bval_is_refused_when_loaded(tmp_path):
    root = _write_case(tmp_path / "c")
    (root / "ses-day0" / "dwi" / "p_ses-day0_dwi.bval").unlink()
    case = scan_case(root)
    with pytest.raises(
        NiftiLayoutError, match=r"needs its b-values beside it in p_ses-day0_dwi\.bval"
    ):
        case.sessions[0].pick("DWI").load()


def test_a_bval_with_the_wrong_count_is_refused(tmp_path):
    root = _write_case(tmp_path / "c")
    (root / "ses-day0" / "dwi" / "p_ses-day0_dwi.bval").write_text("0 500 1000\n")
    with pytest.raises(NiftiLayoutError, match=r"3 b-values for 2 volume"):
        scan_case(root).sessions[0].pick("DWI").load()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "needs sessions.tsv"),
        ("session_id\tdate\nses-day0\t2023-03-14\n", "missing column.*acq_time"),
        ("session_id\tacq_time\nses-day0\t14.03.2023\nses-day3\t2023-03-17\n", "line 2.*ISO date"),
        ("session_id\tacq_time\nses-day0\t2023-03-14\n", "ses-day3 are not listed"),
        ("session_id\tacq_time\nday0\t2023-03-14\n", "line 2: session_id must look like ses-"),
    ],
)
def test_sessions_tsv_problems_are_named(tmp_path, content, match):
    root = _write_case(tmp_path / "c")
    if content is None:
        (root / "sessions.tsv").unlink()
        (root / "ses-day0" / "keep").mkdir()  # still a ses-* folder layout
    else:
        (root / "sessions.tsv").write_text(content)
    with pytest.raises(NiftiLayoutError, match=match):
        scan_case(root)
