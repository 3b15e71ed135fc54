"""Diffusion scans of the test-retest truths (synthetic.test_retest_dwi): physics, truth, layout."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from imaging.case import scan_case
from imaging.sequence import SequenceClass
from synthetic.test_retest import RetestTruth, changed_fraction, make_pair, make_truth, write_pair
from synthetic.test_retest_dwi import (
    RADC_RESTRICTED,
    dwi_settings,
    lesion_dwi_volume_ml,
    render_dwi,
    true_dwi,
    write_dwi,
)
from tests.test_test_retest import AFFINE, ELLIPSOIDS, SHAPE

SEED = 11


@pytest.fixture(scope="module")
def truth() -> RetestTruth:
    world = np.einsum("ij,j...->i...", AFFINE[:3, :3], np.indices(SHAPE, dtype=np.float64))
    world += AFFINE[:3, 3, None, None, None]
    mask = np.zeros(SHAPE, bool)
    for centre, axes in ELLIPSOIDS:
        mask |= sum(((world[a] - centre[a]) / axes[a]) ** 2 for a in range(3)) <= 1.0
    return make_truth(mask, AFFINE, truth_seed=SEED, slice_mm=3.0)


def test_the_scanner_adc_gives_the_tissue_and_lesion_adc(truth: RetestTruth) -> None:
    dwi = {**dwi_settings(SEED), "noise_sd": 0.005}
    scan = render_dwi(truth, truth.fraction, dwi, scan_seed=5, head_pose=np.eye(4))
    adc = np.asarray(scan.adc_um2s.data)
    # scan voxel -> render voxel, to read the truth under each scan voxel's centre
    to_render = np.linalg.inv(AFFINE) @ scan.adc_um2s.affine
    ijk = np.indices(adc.shape, dtype=np.float64).reshape(3, -1)
    points = to_render[:3, :3] @ ijk + to_render[:3, 3:4]

    def under(volume: np.ndarray) -> np.ndarray:
        return np.asarray(ndi.map_coordinates(volume, points, order=1)).reshape(adc.shape)

    wm = under(ndi.uniform_filter(truth.tissue_fractions["wm"], 5)) > 0.97
    wm &= under(ndi.uniform_filter(truth.fraction, 9)) < 1e-3
    core = under(ndi.uniform_filter(truth.fraction, (3, 3, 5))) > 0.9
    assert wm.sum() > 50 and core.sum() >= 3
    wm_adc = float(dwi["wm_adc_um2s"])
    # white matter: its ADC up to its 2-5 % texture; lesion cores: restricted, +-10 % per lesion
    assert np.median(adc[wm]) == pytest.approx(wm_adc, rel=0.03)
    assert np.median(adc[core]) / wm_adc == pytest.approx(dwi["lesion_radc"], rel=0.12)
    # the trace is brighter in the lesion than in white matter (restriction and T2)
    trace = np.asarray(scan.trace.data)
    assert np.median(trace[core]) > 1.5 * np.median(trace[wm])
    # the grid: 2 x 2 mm in-plane, slices of the drawn thickness, a rigid pose
    spacing = np.linalg.norm(scan.trace.affine[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, [2.0, 2.0, dwi["slice_mm"]], atol=1e-9)


def test_the_diffusion_truth_is_the_restricted_part_of_the_lesion(truth: RetestTruth) -> None:
    dwi = dwi_settings(SEED)
    found = true_dwi(truth, truth.fraction, dwi)
    # the tissue's own rADC: the drawn value, each lesion +-10 %
    assert found["lesion_tissue_radc"] == pytest.approx(dwi["lesion_radc"], rel=0.1)
    # voxels mostly lesion mix in some normal tissue: a higher apparent ADC, never lower
    own = found["lesion_tissue_radc"]
    assert own < found["radc"] <= found["flair_radc"] < own + 0.5 * (1.0 - own)
    assert found["radc"] < RADC_RESTRICTED
    binary_ml = float(np.count_nonzero(truth.fraction >= 0.5)) * truth.voxel_ml
    assert 0.5 * binary_ml < found["volume_ml"] <= binary_ml
    # a weakly restricted lesion loses its partial-volume voxels first
    weak = true_dwi(truth, truth.fraction, {**dwi, "lesion_radc": 0.72})
    assert weak["volume_ml"] < found["volume_ml"]
    empty = true_dwi(truth, np.zeros_like(truth.fraction), dwi)
    assert empty["volume_ml"] == 0.0 and np.isnan(empty["radc"]) and np.isnan(empty["flair_radc"])


def test_each_lesion_gets_its_restricted_volume_and_they_sum_to_the_whole(
    truth: RetestTruth, tmp_path: Path
) -> None:
    """The per-lesion DWI truth: one value per truth lesion of truth.json, in both scans, each at
    most the lesion's FLAIR truth; summed, the whole DWI truth (every restricted voxel mostly
    lesion lies within ASSIGN_MM of a first-scan lesion here, also after +25 % growth). A weakly
    restricted lesion holds less restricted tissue in every lesion."""
    dwi = dwi_settings(SEED)
    pair = make_pair(truth, 0.25, scan_seeds=(8, 9))
    case = write_pair(pair, tmp_path / "lesionpair", extra={"truth_seed": SEED})
    entry = write_dwi(pair, case, truth_seed=SEED)
    lesions = json.loads((case / "truth.json").read_text())["lesions"]
    assert len(lesions) >= 2
    for s in range(2):
        per_lesion = [lesion["dwi_volume_ml"][s] for lesion in lesions]
        assert sum(per_lesion) == pytest.approx(entry["volume_ml"][s], abs=1e-9)
        for lesion, volume in zip(lesions, per_lesion, strict=True):
            assert 0.0 < volume <= lesion["binary_volume_ml"][s] + 1e-9
    grown, _ = changed_fraction(truth, 0.25)
    assert sum(lesion["dwi_volume_ml"][1] for lesion in lesions) > sum(
        lesion["dwi_volume_ml"][0] for lesion in lesions
    )
    weak = lesion_dwi_volume_ml(truth, grown, {**dwi, "lesion_radc": 0.72})
    assert all(w < lesion["dwi_volume_ml"][1] for w, lesion in zip(weak, lesions, strict=True))


def test_the_same_seeds_give_the_same_series_and_new_seeds_a_new_one(truth: RetestTruth) -> None:
    dwi = dwi_settings(SEED)
    one = render_dwi(truth, truth.fraction, dwi, scan_seed=7, head_pose=np.eye(4))
    again = render_dwi(truth, truth.fraction, dwi, scan_seed=7, head_pose=np.eye(4))
    other = render_dwi(truth, truth.fraction, dwi, scan_seed=8, head_pose=np.eye(4))
    np.testing.assert_array_equal(one.trace.data, again.trace.data)
    np.testing.assert_array_equal(one.adc_um2s.data, again.adc_um2s.data)
    assert not np.allclose(one.trace.affine, other.trace.affine)


@pytest.mark.parametrize("kind", ["b0+trace+adc", "trace+adc"])
def test_the_series_is_written_as_the_loader_reads_it(
    truth: RetestTruth, tmp_path: Path, kind: str
) -> None:
    pair = make_pair(truth, 0.25, scan_seeds=(8, 9))
    case = write_pair(pair, tmp_path / "dwipair", extra={"truth_seed": SEED})
    entry = write_dwi(pair, case, truth_seed=SEED, input_kind=kind)
    sessions = scan_case(case).sessions
    for session in sessions:
        classes = sorted(s.sequence.value for s in session.series)
        assert classes == sorted(
            c.value for c in (SequenceClass.ADC, SequenceClass.DWI, SequenceClass.FLAIR)
        )
        (dwi_series,) = [s for s in session.series if s.sequence is SequenceClass.DWI]
        assert dwi_series.b_values == ([0.0, 1000.0] if kind == "b0+trace+adc" else [1000.0])
        image = nib.load(next((case / session.label / "dwi").glob("*_ADC.nii.gz")))
        assert isinstance(image, nib.Nifti1Image)
        scan = entry["scans"][int(session.label[-1]) - 1]
        np.testing.assert_allclose(image.get_sform(), scan["dwi_affine"], atol=1e-5)
    record = json.loads((case / "truth.json").read_text())
    assert record["dwi"]["input_kind"] == kind
    # the grown lesion keeps its tissue: its rADC moves only by the share of partial-volume voxels
    first, second = record["dwi"]["radc"]
    assert 0.3 < first < 0.75 and abs(second - first) < 0.05


@pytest.mark.realdata
def test_a_dwi_beside_the_flair_leaves_the_flair_intervals_as_they_are(
    realdata: Path, tmp_path: Path
) -> None:
    """Each draw perturbs a session's DWI with its own generator: exporting the DWI with the FLAIR
    (or not) must not move the FLAIR's intervals (it did when both shared one generator)."""
    import shutil

    from followup.analyze import analyze_case
    from imaging.pipeline import PipelineParams
    from imaging.uncertainty import UncertaintyParams

    path = realdata / "open_ms_masks_mni" / "patient13_lesions_mni.nii.gz"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    image = nib.load(path)
    assert isinstance(image, nib.Nifti1Image)
    real = make_truth(np.asarray(image.dataobj) > 0, image.affine, truth_seed=5, slice_mm=4.0)
    pair = make_pair(real, 0.25, scan_seeds=(51, 52))
    with_dwi = write_pair(pair, tmp_path / "withdwi")
    write_dwi(pair, with_dwi, truth_seed=5, input_kind="trace+adc")
    flair_only = tmp_path / "flaironly"
    shutil.copytree(with_dwi, flair_only)
    for folder in flair_only.glob("ses-*/dwi"):
        shutil.rmtree(folder)
    params = PipelineParams(uncertainty=UncertaintyParams.level("fast"))
    rows = {
        name: analyze_case(case, tmp_path / f"out-{name}", params=params).sessions
        for name, case in (("dwi", with_dwi), ("flair", flair_only))
    }
    columns = [
        "flair_lesion_volume_ml",
        "flair_lesion_volume_ml_ci_low",
        "flair_lesion_volume_ml_ci_high",
        "flair_lesion_volume_change_ml_ci_low",
        "flair_lesion_volume_change_ml_ci_high",
    ]
    assert rows["dwi"][1]["dwi_lesion_volume_ml_ci_high"] > 0
    for with_row, without_row in zip(rows["dwi"], rows["flair"], strict=True):
        assert {c: with_row.get(c) for c in columns} == {c: without_row.get(c) for c in columns}
