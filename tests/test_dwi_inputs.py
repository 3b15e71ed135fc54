"""DWI as clinical exports carry it (imaging.diffusion, imaging.pipeline, followup.analyze).

* Phantoms (anisotropic, non-cubic grids) of each input kind, written as BIDS-like NIfTI cases: trace +
  ADC without b=0 at b = 800 with the ADC in 1e-3 mm2/s; b=0 + trace without ADC (computed); the trace
  alone; a 2-slice series. Each checks the named behaviour and the exact ADC handling.
* Segmentation phantoms: trace alone (no restriction check, stated), b-value independence of the
  restriction rule, a restricted lesion in grey matter, and bright normal cortex.
* The sample case's day-0 DWI re-exported as trace + ADC (b = 800, 1e-3 mm2/s) and as the trace alone,
  through ``analyze``.
* Real scans (skipped without ../shared/realdata): the Siemens XA30 trace (b = 2500) + scanner ADC of a
  water phantom, the two ADS stroke DWIs, the 2-slice GE DWI.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from followup.analyze import analyze_case
from imaging.bids import scan_bids_case
from imaging.case import scan_case
from imaging.diffusion import split_dwi
from imaging.errors import DwiInputError, SeriesTooSmallError
from imaging.image import MRImage
from imaging.metrics import evaluate_segmentation
from imaging.pipeline import (
    PipelineParams,
    _bias_correct,
    _load_session,
    _register_dwi,
    process_case,
)
from imaging.segment import DwiLesionParams, segment_dwi_lesions
from imaging.sequence import SequenceClass

SHAPE = (36, 40, 14)
SPACING = (2.0, 2.5, 4.0)
ADC_WM, ADC_LESION = 720.0, 360.0  # um2/s


# ----------------------------------------------------------------------------------- helpers
def _affine(shape=SHAPE, spacing=SPACING) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) * s / 2 for n, s in zip(shape, spacing, strict=True)]
    return affine


def _mm(shape, affine) -> list[np.ndarray]:
    ijk = np.indices(shape, dtype=np.float64)
    return [affine[a, a] * ijk[a] + affine[a, 3] for a in range(3)]


def _ellipsoid(xyz, centre, radii) -> np.ndarray:
    return sum(((c - m) / r) ** 2 for c, m, r in zip(xyz, centre, radii, strict=True)) <= 1.0


def _head(shape=SHAPE, spacing=SPACING):
    """S0 and true ADC (um2/s) of a head phantom with one restricted lesion."""
    affine = _affine(shape, spacing)
    xyz = _mm(shape, affine)
    brain = _ellipsoid(xyz, (0, 0, 0), (30, 42, 24))
    lesion = _ellipsoid(xyz, (10, 8, 0), (7, 8, 9))
    s0 = np.where(brain, 1000.0, 0.0)
    adc = np.where(brain, ADC_WM, 0.0)
    adc[lesion] = ADC_LESION
    return affine, brain, lesion, s0, adc


def _trace(s0: np.ndarray, adc_um2s: np.ndarray, b: float) -> np.ndarray:
    return s0 * np.exp(-b * adc_um2s * 1e-6)


def _save(data: np.ndarray, affine: np.ndarray, path: Path, bvals: list[float] | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    if bvals is not None:
        Path(str(path).replace(".nii.gz", ".bval")).write_text(" ".join(f"{b:g}" for b in bvals))


def _case(root: Path, dwi: np.ndarray | None, bvals, adc=None, flair=None, affine=None):
    """A one-session BIDS-like NIfTI case; returns its session (headers scanned)."""
    affine = _affine() if affine is None else affine
    (root / "ses-01").mkdir(parents=True, exist_ok=True)
    (root / "sessions.tsv").write_text("session_id\tacq_time\nses-01\t2024-03-01\n")
    if dwi is not None:
        _save(dwi, affine, root / "ses-01" / "dwi" / "sub-x_ses-01_dwi.nii.gz", bvals)
    if adc is not None:
        adc_data, adc_affine = adc
        _save(adc_data, adc_affine, root / "ses-01" / "dwi" / "sub-x_ses-01_ADC.nii.gz")
    if flair is not None:
        _save(
            flair,
            _affine(flair.shape, (1.0, 1.0, 3.0)),
            root / "ses-01" / "anat" / "f_FLAIR.nii.gz",
        )
    (session,) = scan_bids_case(root)
    return session


# ------------------------------------------------------------------------------ split_dwi
@pytest.mark.parametrize(
    ("bvals", "has_b0", "b_value"),
    [([800.0], False, 800.0), ([0.0, 1000.0, 1000.0], True, 1000.0), ([5.0, 2500.0], True, 2500.0)],
)
def test_split_dwi_takes_the_highest_b_as_trace_and_a_b0_only_when_there_is_one(
    bvals, has_b0, b_value
):
    affine, _, _, s0, adc = _head()
    volumes = [s0 if b <= 50 else _trace(s0, adc, b) * (1 + 0.01 * i) for i, b in enumerate(bvals)]
    data = volumes[0] if len(volumes) == 1 else np.stack(volumes, axis=-1)
    image = MRImage(data.astype(np.float32), affine, sequence="DWI", bvals_s_mm2=bvals)
    split = split_dwi(image)
    assert (split.b0 is not None) is has_b0 and split.b_value_s_mm2 == b_value
    expected = np.mean([v for v, b in zip(volumes, bvals, strict=True) if b == b_value], axis=0)
    np.testing.assert_allclose(split.trace.data, expected, rtol=1e-6)
    assert split.trace.spatial_shape == SHAPE and split.trace.bvals_s_mm2 == (b_value,)


@pytest.mark.parametrize("bvals", [[0.0, 300.0], [0.0]])
def test_a_dwi_without_a_volume_at_b500_or_more_is_refused_by_name(bvals):
    affine, _, _, s0, _ = _head()
    data = np.stack([s0] * len(bvals), axis=-1) if len(bvals) > 1 else s0
    image = MRImage(data.astype(np.float32), affine, sequence="DWI", bvals_s_mm2=bvals)
    with pytest.raises(DwiInputError, match=r"b >= 500"):
        split_dwi(image)


# ------------------------------------------------------------------------------ input kinds
def test_trace_and_adc_without_b0_at_b800_with_adc_in_1e3_mm2s(tmp_path: Path):
    """The ISLES'22 export: one trace volume at b = 800, ADC in 1e-3 mm2/s, no b=0."""
    affine, _, _, s0, adc = _head()
    session = _case(tmp_path, _trace(s0, adc, 800.0), [800.0], adc=(adc / 1000.0, affine))
    images = _load_session(session, PipelineParams())
    assert images.dwi_kind == "trace+adc" and images.adc_source == "scanner"
    assert images.b0 is None and images.dwi_b_value_s_mm2 == 800.0
    assert images.dwi_reference is images.b1000 and images.reference is images.b1000
    np.testing.assert_allclose(images.adc.data, adc, atol=1e-3)  # converted to um2/s exactly
    assert images.adc.acquisition.unit == "um2/s"
    assert any("b = 800" in note for note in images.notes)


def test_b0_and_trace_without_adc_gets_the_adc_computed(tmp_path: Path):
    _, _, _, s0, adc = _head()
    dwi = np.stack([s0, _trace(s0, adc, 1000.0)], axis=-1)
    session = _case(tmp_path, dwi, [0.0, 1000.0])
    images = _load_session(session, PipelineParams())
    assert images.dwi_kind == "b0+trace" and images.adc_source == "computed"
    assert images.dwi_reference is images.b0
    np.testing.assert_allclose(images.adc.data, adc, atol=0.5)


def test_the_trace_alone_is_kept_without_adc_and_the_limitation_is_noted(tmp_path: Path):
    _, _, _, s0, adc = _head()
    session = _case(tmp_path, _trace(s0, adc, 1000.0), [1000.0])
    images = _load_session(session, PipelineParams())
    assert images.dwi_kind == "trace" and images.adc is None and images.adc_source == ""
    assert any("trace alone" in note and "shine-through" in note for note in images.notes)


def test_a_scanner_adc_on_another_grid_without_b0_is_resampled_onto_the_trace(tmp_path: Path):
    _, _, _, s0, _ = _head()
    flat_adc = np.full(SHAPE, ADC_WM)
    coarse_shape, coarse_spacing = (18, 20, 7), (4.0, 5.0, 8.0)
    session = _case(
        tmp_path,
        _trace(s0, flat_adc, 1000.0),
        [1000.0],
        adc=(np.full(coarse_shape, ADC_WM), _affine(coarse_shape, coarse_spacing)),
    )
    images = _load_session(session, PipelineParams())
    assert images.adc.same_grid(images.b1000) and images.adc_source == "scanner"
    centre = tuple(n // 2 for n in SHAPE)
    assert images.adc.data[centre] == pytest.approx(ADC_WM, rel=1e-5)
    assert any("resampled onto the trace grid" in note for note in images.notes)


def test_a_two_slice_dwi_alone_is_a_named_error_not_an_itk_traceback(tmp_path: Path):
    affine, _, _, s0, adc = _head((36, 40, 2))
    dwi = np.stack([s0, _trace(s0, adc, 1000.0)], axis=-1)
    root = tmp_path / "case"
    _case(root, dwi, [0.0, 1000.0], affine=affine)
    with pytest.raises(SeriesTooSmallError, match=r"2 voxels along one axis.*Export the whole"):
        process_case(scan_case(root))
    out = tmp_path / "out"
    with pytest.raises(SeriesTooSmallError):
        analyze_case(root, out)
    assert not list(out.glob("sub-*"))  # nothing half-written


def test_a_two_slice_dwi_beside_a_flair_is_taken_as_aligned_with_a_note(tmp_path: Path):
    affine, _, _, s0, adc = _head((36, 40, 2))
    dwi = np.stack([s0, _trace(s0, adc, 1000.0)], axis=-1)
    flair = np.zeros((40, 48, 20), np.float32)
    flair[8:32, 8:40, 4:16] = 300.0
    session = _case(tmp_path, dwi, [0.0, 1000.0], flair=flair, affine=affine)
    params = PipelineParams()
    images = _load_session(session, params)
    assert not images.dwi_registrable
    assert any("taken as aligned" in note for note in images.notes)
    before = np.asarray(images.b1000.data).copy()
    _bias_correct(images, params)  # N4 is skipped for the DWI (it fails on 2 slices)
    np.testing.assert_array_equal(images.b1000.data, before)
    _register_dwi(images, params)
    np.testing.assert_array_equal(images.dwi_to_reference, np.eye(4))
    assert "skipped" in images.registrations["dwi_to_reference"]


# ------------------------------------------------------------------------------ segmentation
def _segmentation_phantom(b_value: float = 1000.0, seed: int = 3):
    """Brain with white matter (prior 1) and a grey-matter rim; a restricted WM lesion, a
    shine-through spot (bright, ADC normal), a restricted grey-matter lesion."""
    shape, spacing = (56, 60, 18), (2.0, 2.0, 4.0)
    affine = _affine(shape, spacing)
    xyz = _mm(shape, affine)
    brain = _ellipsoid(xyz, (0, 0, 0), (50, 55, 34))
    wm = _ellipsoid(xyz, (0, 0, 0), (36, 36, 24))
    restricted = _ellipsoid(xyz, (14, 10, 4), (8, 9, 9))
    shine = _ellipsoid(xyz, (-16, 10, 4), (8, 9, 9))
    grey_lesion = _ellipsoid(xyz, (0, -46, 0), (7, 4, 9)) & brain & ~wm
    rng = np.random.default_rng(seed)
    s0 = np.where(brain, 1300.0, 0.0)
    s0[wm] = 1000.0
    s0[shine] = 1000.0 * np.exp(b_value * 360e-6)  # T2 shine-through: as bright as the lesion
    adc = np.where(brain, 850.0, 0.0)
    adc[wm] = ADC_WM
    adc[restricted | grey_lesion] = ADC_LESION
    trace = _trace(s0, adc, b_value)
    noise = 0.02 * float(np.median(trace[wm]))
    trace = np.where(brain, trace + rng.normal(0, noise, shape), 0.0)
    adc_noisy = np.where(brain, adc + rng.normal(0, 25, shape), 0.0)
    prior = ndimage.gaussian_filter(wm.astype(np.float32), (1.0, 1.0, 0.5))
    images = (
        MRImage(trace.astype(np.float32), affine, sequence="DWI", bvals_s_mm2=[b_value]),
        MRImage(adc_noisy.astype(np.float32), affine, sequence="ADC"),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(prior, affine),
    )
    return images, {"restricted": restricted, "shine": shine, "grey": grey_lesion}, spacing


@pytest.mark.parametrize("b_value", [800.0, 1000.0, 2500.0])
def test_restriction_is_judged_relative_to_nawm_at_any_b_value(b_value):
    (trace, adc, brain, prior), truth, spacing = _segmentation_phantom(b_value)
    result = segment_dwi_lesions(trace, adc, brain, prior)
    mask = np.asarray(result.lesion_mask.data) > 0
    expected = truth["restricted"] | truth["grey"]
    assert evaluate_segmentation(expected, mask, spacing_mm=spacing).dice >= 0.9
    assert not (mask & truth["shine"]).any()
    assert result.nawm_adc_um2s == pytest.approx(ADC_WM, rel=0.02)
    assert result.radc_lesion == pytest.approx(ADC_LESION / ADC_WM, abs=0.03)


def test_a_restricted_grey_matter_lesion_is_found_unless_the_territory_is_white_matter():
    (trace, adc, brain, prior), truth, _ = _segmentation_phantom()
    found = np.asarray(segment_dwi_lesions(trace, adc, brain, prior).lesion_mask.data) > 0
    assert found[truth["grey"]].mean() >= 0.8
    wm_only = segment_dwi_lesions(
        trace, adc, brain, prior, params=DwiLesionParams(territory="white_matter")
    )
    assert not (np.asarray(wm_only.lesion_mask.data) > 0)[truth["grey"]].any()
    # the normal grey matter, brighter than white matter on the trace, is never a lesion
    grey = (np.asarray(brain.data) > 0) & (np.asarray(prior.data) < 0.2) & ~truth["grey"]
    assert not (found & grey).any()


def test_the_trace_alone_finds_hyperintensity_without_telling_shine_through_apart():
    (trace, _, brain, prior), truth, spacing = _segmentation_phantom()
    result = segment_dwi_lesions(trace, None, brain, prior)
    mask = np.asarray(result.lesion_mask.data) > 0
    assert not result.adc_used and result.radc is None
    assert math.isnan(result.nawm_adc_um2s) and math.isnan(result.lesion_adc_mean_um2s)
    assert math.isnan(result.radc_lesion) and math.isnan(result.seed_radc_max)
    assert (
        evaluate_segmentation(truth["restricted"], mask & ~truth["shine"], spacing_mm=spacing).dice
        >= 0.85
    )
    assert mask[truth["shine"]].mean() >= 0.8  # the stated limitation: shine-through is called too


# --------------------------------------------------------------------- the sample, re-exported
def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def reexported(sample_case: Path, tmp_path_factory) -> dict[str, dict[str, str]]:
    """The sample's first DWI session as trace + ADC (b = 800, 1e-3 mm2/s) and as the trace alone."""
    session = scan_case(sample_case).sessions[0]
    dwi = session.pick(SequenceClass.DWI).load()
    adc = session.pick(SequenceClass.ADC).load()  # um2/s
    bvals = list(dwi.bvals_s_mm2)
    s0 = np.asarray(dwi.data, np.float64)[..., bvals.index(0.0)]
    trace_800 = _trace(s0, np.asarray(adc.data, np.float64), 800.0)
    rows = {}
    for kind in ("trace+adc", "trace"):
        root = tmp_path_factory.mktemp("reexport") / kind.replace("+", "_")
        root.mkdir()
        (root / "sessions.tsv").write_text(
            f"session_id\tacq_time\nses-01\t{session.study_date.isoformat()}\n"
        )
        folder = root / "ses-01" / "dwi"
        _save(trace_800, dwi.affine, folder / "sub-x_ses-01_dwi.nii.gz", [800.0])
        if kind == "trace+adc":
            _save(np.asarray(adc.data) / 1000.0, adc.affine, folder / "sub-x_ses-01_ADC.nii.gz")
        result = analyze_case(root, root.parent / f"out-{root.name}")
        (row,) = _read(result.folder / "sessions.tsv")
        provenance = json.loads((result.folder / "provenance.json").read_text())
        row["provenance"] = provenance["sessions"]["ses-01"]
        rows[kind] = row
    return rows


def test_the_sample_as_trace_and_adc_at_b800_gives_adc_and_radc(reexported):
    row = reexported["trace+adc"]
    assert row["dwi_input"] == "trace+adc" and row["adc_source"] == "scanner"
    assert float(row["dwi_lesion_volume_ml"]) > 1.0  # the day-0 restriction (several mL)
    assert 650 <= float(row["nawm_adc_mean_um2s"]) <= 800  # the generator's NAWM: 700 um2/s
    assert 0.35 <= float(row["radc"]) <= 0.75
    assert row["provenance"]["dwi_input"]["trace_b_value_s_mm2"] == 800.0
    assert row["provenance"]["dwi_input"]["restriction_checked"] is True


def test_the_sample_as_trace_alone_leaves_adc_and_radc_empty(reexported):
    row = reexported["trace"]
    assert row["dwi_input"] == "trace" and row["adc_source"] == ""
    assert row["dwi_lesion_volume_ml"] != "" and float(row["brain_volume_ml"]) > 800
    for column in ("radc", "nawm_adc_mean_um2s", "dwi_lesion_adc_mean_um2s"):
        assert row[column] == "", column  # never a made-up number
    assert row["provenance"]["dwi_input"]["restriction_checked"] is False
    assert any("trace alone" in note for note in row["provenance"]["notes"])


# ------------------------------------------------------------------------------- real scans
def _link_dicom(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        (target / path.name).symlink_to(path)


def _ads_case(realdata: Path, subject: str, root: Path, *, with_b0: bool, with_adc: bool) -> Path:
    folder = realdata / "ads_dwi" / subject
    trace = nib.load(folder / f"{subject}_DWI.nii.gz")
    data = np.asarray(trace.dataobj, np.float32)
    bvals = [1000.0]
    if with_b0:
        b0 = np.asarray(nib.load(folder / f"{subject}_b0.nii.gz").dataobj, np.float32)
        data, bvals = np.stack([b0, data], axis=-1), [0.0, 1000.0]
    (root / "sessions.tsv").parent.mkdir(parents=True)
    (root / "sessions.tsv").write_text("session_id\tacq_time\nses-01\t2020-01-01\n")
    _save(data, trace.affine, root / "ses-01" / "dwi" / f"sub-{subject}_ses-01_dwi.nii.gz", bvals)
    if with_adc:
        (root / "ses-01" / "dwi" / f"sub-{subject}_ses-01_ADC.nii.gz").symlink_to(
            folder / f"{subject}_ADC.nii.gz"
        )
    return root


def _analyzed_row(root: Path, out: Path) -> dict[str, str]:
    result = analyze_case(root, out)
    (row,) = _read(result.folder / "sessions.tsv")
    return row


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("pair", "nawm_adc_range"),
    [
        # a water phantom: the ADC of water at room temperature (stored values 1900-2260)
        ("classic", (1800.0, 2300.0)),
        # a volunteer's brain: white matter at b = 2500 (lower than at b = 1000: non-Gaussian
        # diffusion), no lesion
        ("enhanced", (450.0, 800.0)),
    ],
)
def test_xa30_trace_at_b2500_with_scanner_adc_analyses(
    realdata: Path, tmp_path: Path, pair: str, nawm_adc_range: tuple[float, float]
):
    root = tmp_path / "xa30"
    for role in ("tracew", "adc"):
        _link_dicom(realdata / "siemens_xa30" / f"{pair}_{role}", root / role)
    row = _analyzed_row(root, tmp_path / "out")
    assert row["dwi_input"] == "trace+adc" and row["adc_source"] == "scanner"
    low, high = nawm_adc_range
    assert low <= float(row["nawm_adc_mean_um2s"]) <= high
    assert float(row["dwi_lesion_volume_ml"]) < 0.5


@pytest.mark.realdata
def test_ads_stroke_subject01_large_infarct_from_b0_and_trace(realdata: Path, tmp_path: Path):
    root = _ads_case(realdata, "Subject01", tmp_path / "s01", with_b0=True, with_adc=False)
    row = _analyzed_row(root, tmp_path / "out")
    assert row["dwi_input"] == "b0+trace" and row["adc_source"] == "computed"
    assert 1200 <= float(row["brain_volume_ml"]) <= 2000
    # ADS (Liu et al. 2021) reports 204 mL in MNI space for this territorial infarct
    assert 90 <= float(row["dwi_lesion_volume_ml"]) <= 260
    assert float(row["radc"]) < 0.75


@pytest.mark.realdata
@pytest.mark.parametrize(
    "with_b0",
    [
        pytest.param(
            True,
            marks=pytest.mark.xfail(
                strict=False,  # the template fit is not repeatable to the voxel under load
                reason="known shortfall (issue 13): with the b=0 as reference the merged front end "
                "gives a larger posterior-fossa brain mask and 3.2 mL of cerebellar foci beside the "
                "pontine infarct (ADS: 0.35 mL)",
            ),
        ),
        False,
    ],
)
def test_ads_stroke_subject02_small_pontine_infarct_is_not_over_called(
    realdata: Path, tmp_path: Path, with_b0: bool
):
    root = _ads_case(realdata, "Subject02", tmp_path / "s02", with_b0=with_b0, with_adc=True)
    row = _analyzed_row(root, tmp_path / "out")
    assert row["dwi_input"] == ("b0+trace+adc" if with_b0 else "trace+adc")
    assert 1200 <= float(row["brain_volume_ml"]) <= 2000
    # ADS reports 0.35 mL (MNI space), all in the pons; before this method: 1.93 mL in 30 lesions
    # spread over the brain, now the pontine lesion with a few cerebellar foci (posterior-fossa EPI:
    # bright, ADC low), 1.0-2.3 mL depending on the template fit (not repeatable to the voxel under
    # varying thread counts)
    assert 0.1 <= float(row["dwi_lesion_volume_ml"]) <= 2.5
    assert int(row["dwi_lesion_count"]) <= 10
    assert float(row["dwi_lesion_volume_infratentorial_ml"]) > 0.8 * float(
        row["dwi_lesion_volume_ml"]
    )
    assert 0.3 <= float(row["radc"]) <= 0.75 and 700 <= float(row["nawm_adc_mean_um2s"]) <= 950


@pytest.mark.realdata
def test_the_two_slice_ge_dwi_gives_a_named_error(realdata: Path, tmp_path: Path):
    root = tmp_path / "ge"
    _link_dicom(realdata / "ge_mr29_dwi", root / "dwi")
    with pytest.raises(SeriesTooSmallError, match="2 voxels along one axis"):
        analyze_case(root, tmp_path / "out")
    assert not list((tmp_path / "out").glob("sub-*"))
