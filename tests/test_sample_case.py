"""The bundled sample case (sample_scans/indexcase): it loads as five sessions with DWI, ADC and FLAIR
each, every series agrees with dcm2niix and with the generator's true geometry, and the committed files
are what the generator makes from its fixed seed."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from followup.inspect import case_summary
from imaging.case import CaseIndex, scan_case
from imaging.image import MRImage
from imaging.sequence import SequenceClass
from imaging.units import detect_adc_scale

KINDS = {"flair": SequenceClass.FLAIR, "dwi": SequenceClass.DWI, "adc": SequenceClass.ADC}


@pytest.fixture(scope="module")
def truth(sample_case: Path) -> dict:
    return json.loads((sample_case / "truth" / "truth.json").read_text())


@pytest.fixture(scope="module")
def case(sample_case: Path) -> CaseIndex:
    return scan_case(sample_case)


@pytest.fixture(scope="module")
def loaded(case: CaseIndex) -> dict[tuple[str, str], MRImage]:
    images = {}
    for session in case.sessions:
        for kind, sequence in KINDS.items():
            entry = session.pick(sequence)
            assert entry is not None, f"{session.label} has no {kind}"
            images[(session.label, kind)] = entry.load()
    return images


def test_inspect_lists_five_sessions_each_with_dwi_adc_and_flair(case, truth):
    summary = case_summary(case)
    assert [s["session_id"] for s in summary["sessions"]] == [
        s["session_id"] for s in truth["sessions"]
    ]
    assert [s["has"] for s in summary["sessions"]] == [["ADC", "DWI", "FLAIR"]] * 5
    days = [row["day"] for s in summary["sessions"] for row in s["series"][:1]]
    assert days == [s["day"] for s in truth["sessions"]] == [0, 3, 8, 45, 165]
    for session, expected in zip(case.sessions, truth["sessions"], strict=True):
        for kind, sequence in KINDS.items():
            assert session.pick(sequence).uid == expected["series"][kind]["series_instance_uid"]
        localizer = [
            s
            for s in session.series
            if s.uid == expected["series"]["localizer"]["series_instance_uid"]
        ]
        assert localizer and localizer[0].sequence is SequenceClass.OTHER and localizer[0].problem


def test_every_series_has_the_true_geometry_and_b_values(loaded, truth, sample_case):
    for expected in truth["sessions"]:
        label = expected["session_id"]
        for kind in KINDS:
            image = loaded[(label, kind)]
            grid = expected["grids"]["flair" if kind == "flair" else "dwi"]
            assert image.spatial_shape == tuple(grid["shape_ijk"]), (label, kind)
            np.testing.assert_allclose(
                image.affine, grid["affine_ras"], atol=1e-3, err_msg=f"{label} {kind}"
            )
        assert loaded[(label, "dwi")].bvals_s_mm2 == (0.0, 1000.0)
        mask = nib.load(sample_case / expected["truth_files"]["flair_lesion"])
        np.testing.assert_allclose(mask.affine, loaded[(label, "flair")].affine, atol=1e-3)


def test_adc_is_in_um2s_whatever_the_vendor_stored(loaded, truth, sample_case):
    """The GE session stores ADC x 0.001 (1e-3 mm2/s after rescale); all come out in um2/s."""
    stored = {s["session_id"]: s["series"]["adc"]["rescaled_unit"] for s in truth["sessions"]}
    assert len(set(stored.values())) == 2  # the sample holds both units
    for expected in truth["sessions"]:
        label = expected["session_id"]
        adc = loaded[(label, "adc")]
        assert adc.acquisition.unit == "um2/s"
        brain = (
            np.asarray(nib.load(sample_case / expected["truth_files"]["brain_mask_dwi"]).dataobj)
            > 0
        )
        lesion = (
            np.asarray(nib.load(sample_case / expected["truth_files"]["dwi_lesion"]).dataobj) > 0
        )
        nawm = brain & ~lesion
        median = float(np.median(adc.data[nawm]))
        assert 600 < median < 1300, (label, median)  # brain tissue with CSF partial volume
        if lesion.any():
            assert float(np.mean(adc.data[lesion])) < 0.75 * 720  # restricted by definition


def _dcm2niix(folder: Path, out: Path) -> nib.Nifti1Image:
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    out.mkdir(parents=True)
    subprocess.run(
        [exe, "-z", "y", "-f", "ref", "-o", str(out), str(folder)], check=True, capture_output=True
    )
    (image,) = [nib.load(p) for p in out.glob("ref*.nii.gz")]
    return nib.as_closest_canonical(image)


def test_every_series_matches_dcm2niix(loaded, truth, sample_case, tmp_path):
    for expected in truth["sessions"]:
        label = expected["session_id"]
        for kind in KINDS:
            files = [sample_case / f for f in expected["series"][kind]["files"]]
            folder = tmp_path / label / kind / "in"
            folder.mkdir(parents=True)
            for path in files:  # dcm2niix reads neither .gz nor folders mixed with other series
                target = folder / path.name.removesuffix(".dcm.gz")
                raw = path.read_bytes()
                target.write_bytes(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
            reference = _dcm2niix(folder, tmp_path / label / kind / "out")
            mine = loaded[(label, kind)].reoriented("RAS")
            assert mine.shape == reference.shape, (label, kind)
            np.testing.assert_allclose(
                mine.affine, reference.affine, atol=1e-3, err_msg=f"{label} {kind}"
            )
            values = reference.get_fdata()
            if kind == "adc":  # compare in um2/s: dcm2niix ignores GE's RescaleSlope 0.001
                values = values * detect_adc_scale(values)[0]
            np.testing.assert_allclose(
                np.asarray(mine.data, float), values, atol=1e-3, err_msg=f"{label} {kind}"
            )


@pytest.mark.slow
def test_the_committed_sample_is_what_the_generator_makes(sample_case, tmp_path, loaded, truth):
    """Rebuild the case from its seed and compare content (pixels, geometry, truth), not bytes, so
    that a new release of an image codec cannot fail the test while a change of the generator does."""
    from synthetic import make_case

    rebuilt = make_case(tmp_path / "indexcase", seed=truth["seed"])
    assert json.loads((rebuilt / "truth" / "truth.json").read_text()) == truth
    again = scan_case(rebuilt)
    for session in again.sessions:
        for kind, sequence in KINDS.items():
            image = session.pick(sequence).load()
            committed = loaded[(session.label, kind)]
            np.testing.assert_array_equal(image.data, committed.data)
            np.testing.assert_allclose(image.affine, committed.affine, atol=1e-6)
    for path in sorted((sample_case / "truth").rglob("*.nii.gz")):
        other = rebuilt / "truth" / path.relative_to(sample_case / "truth")
        np.testing.assert_array_equal(
            np.asarray(nib.load(other).dataobj), np.asarray(nib.load(path).dataobj)
        )
