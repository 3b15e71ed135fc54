"""Lesion segmentation (imaging.segment) and NAWM normalisation (imaging.normalize).

* Phantoms with known answers (anisotropic, non-cubic grids): a lesion is found with its true extent;
  the false positives the method is built to reject (choroid plexus, septum pellucidum, the brain
  edge, bright cortex) are rejected; DWI shine-through (pseudo-normalised ADC) is not a DWI lesion.
* The sample case, with an ORACLE registration: the true brain masks and a white-matter prior warped
  with the generator's true head pose, so that these tests measure the segmentation alone (the
  pipeline tests measure it behind the real brain mask and registration). The FLAIR is corrected with
  the pipeline's N4 first.
* A lesion-free control case from the generator (slow: about 40 s to generate).
* The real MS patient (skipped without ../shared/realdata).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from imaging.bias import correct_bias
from imaging.case import scan_case
from imaging.errors import GeometryError
from imaging.image import MRImage
from imaging.lesion_prior import lesion_prior_on, mni_map_on
from imaging.metrics import SegmentationMetrics, evaluate_segmentation
from imaging.normalize import (
    NawmParams,
    NormalizationError,
    normalize_to_nawm,
    robust_location_scale,
)
from imaging.segment import (
    DwiLesionParams,
    FlairLesionParams,
    segment_dwi_lesions,
    segment_flair_lesions,
)
from imaging.sequence import SequenceClass
from imaging.template import mni_template
from synthetic.evaluate import false_lesion_ml, oracle_wm_prior


# ----------------------------------------------------------------------------------- helpers
def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """Affine of a grid centred on the origin."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-(n - 1) * s / 2 for n, s in zip(shape, spacing, strict=True)]
    return affine


def _mm(shape: tuple[int, int, int], affine: np.ndarray) -> list[np.ndarray]:
    """World x, y, z (mm) of every voxel."""
    ijk = np.indices(shape, dtype=np.float64)
    return [affine[a, a] * ijk[a] + affine[a, 3] for a in range(3)]


def _ellipsoid(xyz: list[np.ndarray], centre, radii) -> np.ndarray:
    return sum(((c - m) / r) ** 2 for c, m, r in zip(xyz, centre, radii, strict=True)) <= 1.0


# ----------------------------------------------------------------------------- FLAIR phantom
FLAIR_SHAPE = (70, 80, 22)
FLAIR_SPACING = (1.0, 1.0, 3.0)


def _flair_phantom(seed: int = 0) -> dict[str, object]:
    """A head-sized FLAIR phantom: bright cortex (z ~ 6), two ventricles split by a bright septum,
    a bright choroid plexus tuft inside one, two WM lesions, and a WM prior that (as in patients with
    large ventricles) also covers the ventricles."""
    affine = _grid(FLAIR_SHAPE, FLAIR_SPACING)
    xyz = _mm(FLAIR_SHAPE, affine)
    brain = _ellipsoid(xyz, (0, 0, 0), (32, 37, 30))
    wm = _ellipsoid(xyz, (0, 0, 0), (26, 31, 24))
    ventricles = _ellipsoid(xyz, (0, 0, 0), (10.5, 12, 9))
    septum = ventricles & (np.abs(xyz[0]) <= 1.0)  # 2 mm thick, CSF on both sides
    left = ventricles & (xyz[0] < -1.0)
    right = ventricles & (xyz[0] > 1.0)
    choroid = _ellipsoid(xyz, (-6, -4, 0), (3.5, 3.5, 6.0))  # a tuft floating in the left one
    lesion_big = _ellipsoid(xyz, (13, 12, 3), (5.5, 6.5, 7.0))
    lesion_faint = _ellipsoid(xyz, (-15, -14, -6), (4.0, 4.5, 5.0))
    image = np.where(brain, 125.0, 0.0)  # grey matter: 6 SD above white matter
    image[wm] = 100.0
    image[left | right] = 20.0
    image[septum] = 165.0
    image[choroid] = 175.0
    image[lesion_big] = 165.0
    image[lesion_faint] = 150.0
    rng = np.random.default_rng(seed)
    image = np.where(brain, image + rng.normal(0.0, 4.0, FLAIR_SHAPE), 0.0)
    prior = ndimage.gaussian_filter(wm.astype(np.float32), (1.5, 1.5, 0.5))
    return {
        "flair": MRImage(image.astype(np.float32), affine, sequence=SequenceClass.FLAIR),
        "brain": MRImage(brain.astype(np.uint8), affine),
        "prior": MRImage(prior, affine),
        "lesion": lesion_big | lesion_faint,
        "lesion_big": lesion_big,
        "lesion_faint": lesion_faint,
        "septum": septum,
        "choroid": choroid,
        "cortex": brain & ~wm,
    }


@pytest.fixture(scope="module")
def flair_phantom() -> dict[str, object]:
    return _flair_phantom()


def test_flair_phantom_lesions_are_found_with_their_true_extent(flair_phantom):
    result = segment_flair_lesions(
        flair_phantom["flair"], flair_phantom["brain"], flair_phantom["prior"]
    )
    mask = np.asarray(result.lesion_mask.data) > 0
    truth = flair_phantom["lesion"]
    metrics = evaluate_segmentation(truth, mask, spacing_mm=FLAIR_SPACING)
    assert metrics.dice >= 0.95, metrics
    assert metrics.n_pred_lesions == 2 and metrics.lesion_f1 == 1.0, metrics
    assert metrics.avd_percent <= 5.0
    assert result.n_lesions == 2
    assert result.volume_ml == pytest.approx(metrics.volume_pred_ml)
    # the faint lesion (z ~ 12) is found as well as the bright one (z ~ 16)
    assert (mask & flair_phantom["lesion_faint"]).sum() >= 0.9 * flair_phantom["lesion_faint"].sum()


def test_flair_phantom_rejects_choroid_plexus_septum_and_cortex(flair_phantom):
    result = segment_flair_lesions(
        flair_phantom["flair"], flair_phantom["brain"], flair_phantom["prior"]
    )
    mask = np.asarray(result.lesion_mask.data) > 0
    assert not (mask & flair_phantom["choroid"]).any()
    assert not (mask & flair_phantom["septum"]).any()
    assert not (mask & flair_phantom["cortex"]).any()
    # each of them is as bright as a lesion, so the rules, not the threshold, reject them
    z = np.asarray(result.zscore.data)
    for name in ("choroid", "septum"):
        assert np.median(z[flair_phantom[name]]) > result.seed_z_used, name


def test_each_flair_false_positive_rule_is_what_rejects_its_structure(flair_phantom):
    """Switching a rule off lets its structure through: the tests above cannot pass by accident."""
    args = (flair_phantom["flair"], flair_phantom["brain"], flair_phantom["prior"])
    no_enclosure = segment_flair_lesions(*args, params=FlairLesionParams(csf_enclosure_max=1.0))
    assert (np.asarray(no_enclosure.lesion_mask.data) > 0)[flair_phantom["choroid"]].any()
    # unsmoothed: the 1 mm smoothing of the contrast map alone already dims the 2 mm septum
    no_csf_rule = FlairLesionParams(
        csf_seed_distance_mm=0.0, csf_grow_distance_mm=0.0, csf_enclosure_max=1.0, smooth_mm=0.0
    )
    loose = segment_flair_lesions(*args, params=no_csf_rule)
    assert (np.asarray(loose.lesion_mask.data) > 0)[flair_phantom["septum"]].any()
    # cortex: seeds measured over grey matter (not white matter) are what keep it out once seeds
    # may start anywhere in the (6 mm dilated) white-matter region
    anywhere = {"seed_wm_prior_min": 0.0, "seed_c": 3.0, "wm_dilation_mm": 6.0}
    guarded = segment_flair_lesions(*args, params=FlairLesionParams(**anywhere))
    assert not (np.asarray(guarded.lesion_mask.data) > 0)[flair_phantom["cortex"]].any()
    no_gm_ceiling = FlairLesionParams(
        seed_above_gm=False, seed_over_gm=0.0, grow_over_gm=0.0, **anywhere
    )
    greedy = segment_flair_lesions(*args, params=no_gm_ceiling)
    assert (np.asarray(greedy.lesion_mask.data) > 0)[flair_phantom["cortex"]].any()


def test_bright_spots_at_the_brain_edge_are_not_lesions():
    """With a white-matter prior of 1 everywhere, only the edge distance separates a bright spot
    2 mm under the surface (rejected) from the same spot 15 mm deep (found)."""
    shape, spacing = (60, 64, 20), (1.0, 1.0, 3.0)
    affine = _grid(shape, spacing)
    xyz = _mm(shape, affine)
    brain = _ellipsoid(xyz, (0, 0, 0), (28, 30, 28))
    shallow = _ellipsoid(xyz, (25, 0, 0), (2.5, 3, 3))
    deep = _ellipsoid(xyz, (-12, 0, 0), (2.5, 3, 3))
    image = np.where(brain, 100.0 + np.random.default_rng(3).normal(0, 4, shape), 0.0)
    image[shallow | deep] = 170.0
    result = segment_flair_lesions(
        MRImage(image.astype(np.float32), affine),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(np.ones(shape, np.float32), affine),
    )
    mask = np.asarray(result.lesion_mask.data) > 0
    assert not (mask & shallow).any()
    assert (mask & deep).sum() >= 0.9 * deep.sum()
    assert (mask & ~deep).sum() == 0


def test_flair_result_is_on_the_input_grid_and_deterministic(flair_phantom):
    args = (flair_phantom["flair"], flair_phantom["brain"], flair_phantom["prior"])
    first = segment_flair_lesions(*args)
    second = segment_flair_lesions(*args)
    for image in (first.lesion_mask, first.zscore, first.nawm_mask):
        assert image.same_grid(flair_phantom["flair"])
    assert first.lesion_mask.data.dtype == np.uint8
    assert first.zscore.data.dtype == np.float32
    np.testing.assert_array_equal(first.lesion_mask.data, second.lesion_mask.data)
    np.testing.assert_array_equal(first.zscore.data, second.zscore.data)
    # NAWM: normal white matter, with the true mean and spread, and no lesion in it
    nawm = np.asarray(first.nawm_mask.data) > 0
    assert not (nawm & flair_phantom["lesion"]).any()
    assert first.nawm_median == pytest.approx(100.0, abs=0.5)
    assert first.nawm_sigma == pytest.approx(4.0, rel=0.1)


def test_parameters_are_recorded_with_units_in_their_names():
    flair = FlairLesionParams().to_dict()
    assert flair["min_lesion_volume_mm3"] == 10.0 and flair["edge_distance_mm"] == 5.0
    assert flair["nawm.wm_prior_min"] == 0.9
    assert all(isinstance(v, int | float | bool) for v in flair.values())
    dwi = DwiLesionParams().to_dict()
    assert dwi["radc_max"] == 0.75 and "adc_min_um2s" in dwi and "nawm.trim_z" in dwi
    with pytest.raises(AttributeError):
        FlairLesionParams().seed_c = 1.0  # type: ignore[misc]


def test_inputs_must_share_one_3d_grid(flair_phantom):
    flair, brain, prior = flair_phantom["flair"], flair_phantom["brain"], flair_phantom["prior"]
    moved = prior.affine
    moved[:3, 3] += 2.0
    with pytest.raises(GeometryError, match="wm_prior"):
        segment_flair_lesions(flair, brain, MRImage(prior.data, moved))
    four_d = MRImage(np.stack([flair.data, flair.data], axis=-1), flair.affine)
    with pytest.raises(GeometryError, match="3-D"):
        segment_flair_lesions(four_d, brain, prior)
    with pytest.raises(NormalizationError, match="white-matter prior"):
        segment_flair_lesions(flair, brain, prior.with_data(np.zeros(prior.shape, np.float32)))
    with pytest.raises(NormalizationError, match="empty"):
        segment_flair_lesions(flair, brain.with_data(np.zeros(brain.shape, np.uint8)), prior)


# ------------------------------------------------------------------------------- DWI phantom
def test_dwi_lesion_is_restricted_tissue_not_shine_through():
    """Two equally DWI-bright regions: one restricted (ADC 360, found), one pseudo-normalised (ADC
    700, T2 shine-through, not a DWI lesion); plus an ADC-low but DWI-normal spot (not a lesion)."""
    shape, spacing = (56, 60, 18), (2.0, 2.0, 4.0)
    affine = _grid(shape, spacing)
    xyz = _mm(shape, affine)
    brain = _ellipsoid(xyz, (0, 0, 0), (50, 55, 34))
    wm = _ellipsoid(xyz, (0, 0, 0), (42, 47, 28))
    restricted = _ellipsoid(xyz, (18, 10, 4), (8, 9, 9))
    shine = _ellipsoid(xyz, (-18, 10, 4), (8, 9, 9))
    low_adc_only = _ellipsoid(xyz, (0, -25, -4), (6, 6, 8))
    rng = np.random.default_rng(5)
    b1000 = np.where(brain, 260.0, 0.0)
    b1000[wm] = 300.0
    b1000[restricted | shine] = 480.0
    adc = np.where(brain, 900.0, 0.0)
    adc[wm] = 720.0
    adc[restricted | low_adc_only] = 360.0
    b1000 = np.where(brain, b1000 + rng.normal(0, 6, shape), 0.0)
    adc = np.where(brain, adc + rng.normal(0, 25, shape), 0.0)
    prior = ndimage.gaussian_filter(wm.astype(np.float32), (1.0, 1.0, 0.5))
    result = segment_dwi_lesions(
        MRImage(b1000.astype(np.float32), affine, sequence="DWI", bvals_s_mm2=[1000.0]),
        MRImage(adc.astype(np.float32), affine, sequence="ADC"),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(prior, affine),
    )
    mask = np.asarray(result.lesion_mask.data) > 0
    metrics = evaluate_segmentation(restricted, mask, spacing_mm=spacing)
    assert metrics.dice >= 0.95, metrics
    assert not (mask & shine).any()
    assert not (mask & low_adc_only).any()
    assert result.nawm_adc_um2s == pytest.approx(720.0, rel=0.02)
    assert result.lesion_adc_mean_um2s == pytest.approx(360.0, rel=0.05)
    assert result.radc_lesion == pytest.approx(0.5, abs=0.03)
    assert result.radc.same_grid(result.lesion_mask) and result.lesion_mask.data.dtype == np.uint8
    # the restriction thresholds decide: raising them past the shine-through ADC lets it in
    lax = segment_dwi_lesions(
        MRImage(b1000.astype(np.float32), affine),
        MRImage(adc.astype(np.float32), affine),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(prior, affine),
        params=DwiLesionParams(radc_max=1.1, seed_adc_sd=0.0),
    )
    assert (np.asarray(lax.lesion_mask.data) > 0)[shine].sum() >= 0.9 * shine.sum()


def test_a_large_infarct_with_an_unrestricted_core_is_one_lesion_without_holes():
    """A territorial infarct whose centre is pseudo-normalised (ADC back to normal, DWI still bright
    but below the seeds) is measured whole, as a reader outlines it; ``fill_holes=False`` shows the
    hole the voxel rule leaves."""
    shape, spacing = (60, 64, 20), (1.8, 1.8, 5.0)
    affine = _grid(shape, spacing)
    xyz = _mm(shape, affine)
    brain = _ellipsoid(xyz, (0, 0, 0), (52, 56, 45))
    wm = _ellipsoid(xyz, (0, 0, 0), (44, 48, 38))
    infarct = _ellipsoid(xyz, (20, 5, 0), (16, 20, 24))
    core = _ellipsoid(xyz, (20, 5, 0), (7, 9, 12))
    rng = np.random.default_rng(11)
    b1000 = np.where(brain, 260.0, 0.0)
    b1000[wm] = 300.0
    b1000[infarct] = 520.0
    b1000[core] = 330.0
    adc = np.where(brain, 900.0, 0.0)
    adc[wm] = 720.0
    adc[infarct & ~core] = 380.0
    b1000 = np.where(brain, b1000 + rng.normal(0, 6, shape), 0.0).astype(np.float32)
    adc = np.where(brain, adc + rng.normal(0, 25, shape), 0.0).astype(np.float32)
    images = (
        MRImage(b1000, affine),
        MRImage(adc, affine),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(ndimage.gaussian_filter(wm.astype(np.float32), 1.0), affine),
    )
    result = segment_dwi_lesions(*images)
    mask = np.asarray(result.lesion_mask.data) > 0
    assert result.n_lesions == 1
    assert mask[core].mean() >= 0.95
    assert evaluate_segmentation(infarct, mask, spacing_mm=spacing).dice >= 0.95
    holed = (
        np.asarray(
            segment_dwi_lesions(*images, params=DwiLesionParams(fill_holes=False)).lesion_mask.data
        )
        > 0
    )
    assert holed[core].mean() < 0.2


def test_dwi_without_lesion_gives_an_empty_mask_and_nan_lesion_adc():
    shape, spacing = (40, 44, 12), (2.0, 2.0, 5.0)
    affine = _grid(shape, spacing)
    xyz = _mm(shape, affine)
    brain = _ellipsoid(xyz, (0, 0, 0), (36, 40, 27))
    rng = np.random.default_rng(9)
    b1000 = np.where(brain, 300 + rng.normal(0, 6, shape), 0).astype(np.float32)
    adc = np.where(brain, 720 + rng.normal(0, 25, shape), 0).astype(np.float32)
    result = segment_dwi_lesions(
        MRImage(b1000, affine),
        MRImage(adc, affine),
        MRImage(brain.astype(np.uint8), affine),
        MRImage(np.ones(shape, np.float32), affine),
    )
    assert result.volume_ml == 0.0 and result.n_lesions == 0
    assert math.isnan(result.lesion_adc_mean_um2s)


# ----------------------------------------------------------------------------- normalisation
def test_robust_estimate_ignores_hyperintense_outliers():
    rng = np.random.default_rng(11)
    normal = rng.normal(100.0, 10.0, 20_000)
    sample = np.concatenate([normal, np.full(4_000, 200.0)])  # 17 % lesion voxels
    median, sigma, kept = robust_location_scale(sample)
    assert median == pytest.approx(100.0, abs=0.5)
    assert sigma == pytest.approx(10.0, rel=0.05)
    assert not kept[20_000:].any()
    _, untrimmed_sigma, _ = robust_location_scale(sample, n_trim_iterations=0)
    assert untrimmed_sigma > 1.15 * sigma  # the trimming is what brings sigma back


def test_nawm_z_score_uses_only_core_white_matter(flair_phantom):
    flair, brain, prior = flair_phantom["flair"], flair_phantom["brain"], flair_phantom["prior"]
    norm = normalize_to_nawm(flair, brain, prior, params=NawmParams(wm_prior_min=0.9))
    nawm = np.asarray(norm.nawm_mask.data) > 0
    assert nawm.sum() == norm.n_voxels > 1000
    assert np.all(np.asarray(prior.data)[nawm] >= 0.9)
    z = np.asarray(norm.zscore.data)
    assert abs(float(np.median(z[nawm]))) < 0.05
    assert np.median(z[flair_phantom["lesion_big"]]) == pytest.approx(65 / 4, rel=0.1)
    assert np.all(z[np.asarray(brain.data) == 0] == 0)
    with pytest.raises(NormalizationError):
        normalize_to_nawm(flair, brain, prior, params=NawmParams(min_voxels=10**7))


# ----------------------------------------------------------------------------- sample case
def _load_truth(case_dir: Path, relative: str) -> MRImage:
    image = nib.load(case_dir / relative)
    return MRImage(np.asarray(image.dataobj), image.affine)


def segment_case_with_oracle_registration(case_dir: Path) -> list[dict[str, object]]:
    """Segment every session of a generated case behind the true brain masks and a WM prior warped
    with the true head pose; FLAIR bias-corrected with the pipeline's N4 (imaging.bias)."""
    truth = json.loads((case_dir / "truth" / "truth.json").read_text())
    case = scan_case(case_dir)
    rows = []
    for session, expected in zip(case.sessions, truth["sessions"], strict=True):
        files = expected["truth_files"]
        flair = session.pick(SequenceClass.FLAIR).load()
        dwi = session.pick(SequenceClass.DWI).load()
        adc = session.pick(SequenceClass.ADC).load()
        brain_flair = _load_truth(case_dir, files["brain_mask_flair"])
        brain_dwi = _load_truth(case_dir, files["brain_mask_dwi"])
        prior_flair = oracle_wm_prior(flair, np.array(expected["pose_flair"]))
        b1000 = dwi.volume(dwi.bvals_s_mm2.index(1000.0))
        prior_dwi = oracle_wm_prior(b1000, np.array(expected["pose_dwi"]))
        corrected, _ = correct_bias(flair, brain_flair)
        start = time.perf_counter()
        flair_result = segment_flair_lesions(corrected, brain_flair, prior_flair)
        flair_s = time.perf_counter() - start
        start = time.perf_counter()
        dwi_result = segment_dwi_lesions(b1000, adc, brain_dwi, prior_dwi)
        dwi_s = time.perf_counter() - start
        flair_truth = _load_truth(case_dir, files["flair_lesion"])
        dwi_truth = _load_truth(case_dir, files["dwi_lesion"])
        rows.append(
            {
                "session": session.label,
                "flair": evaluate_segmentation(flair_truth, flair_result.lesion_mask),
                "dwi": evaluate_segmentation(dwi_truth, dwi_result.lesion_mask),
                "false_flair_ml": false_lesion_ml(
                    flair_truth, flair_result.lesion_mask, prior_flair
                ),
                "false_dwi_ml": false_lesion_ml(dwi_truth, dwi_result.lesion_mask, prior_dwi),
                "seconds": flair_s + dwi_s,  # for benchmarks/bench_segment.py; never asserted
            }
        )
    return rows


@pytest.fixture(scope="module")
def sample_rows(sample_case: Path) -> list[dict[str, object]]:
    return segment_case_with_oracle_registration(sample_case)


def test_sample_flair_lesions_meet_the_targets_with_oracle_registration(sample_rows):
    flair: list[SegmentationMetrics] = [row["flair"] for row in sample_rows]
    assert statistics.median(m.dice for m in flair) >= 0.85, [m.dice for m in flair]
    for row, m in zip(sample_rows, flair, strict=True):
        if m.volume_ref_ml > 1.0:
            assert m.dice >= 0.7, (row["session"], m)
        assert m.avd_percent <= 10.0, (row["session"], m)
        assert row["false_flair_ml"] < 0.3, row


def test_sample_dwi_lesions_meet_the_targets_with_oracle_registration(sample_rows):
    dwi: list[SegmentationMetrics] = [row["dwi"] for row in sample_rows]
    with_lesion = [m for m in dwi if m.volume_ref_ml > 0]
    assert len(with_lesion) == 4
    assert statistics.median(m.dice for m in with_lesion) >= 0.85, [m.dice for m in dwi]
    for row, m in zip(sample_rows, dwi, strict=True):
        if m.volume_ref_ml == 0:
            assert m.volume_pred_ml < 0.3, (row["session"], m)
        else:
            if m.volume_ref_ml > 1.0:
                assert m.dice >= 0.7, (row["session"], m)
            # 1e-9: one voxel of the 10-voxel day-45 lesion is exactly 10 %
            assert m.avd_percent <= 10.0 + 1e-9, (row["session"], m)
        assert row["false_dwi_ml"] < 0.3, row


def test_dwi_lesion_follows_restriction_not_flair_through_pseudo_normalisation(sample_rows):
    """Day 45: FLAIR lesion 28 mL, nearly all pseudo-normalised; the DWI lesion stays small."""
    day45 = sample_rows[3]
    assert day45["flair"].volume_pred_ml > 25.0
    assert day45["dwi"].volume_pred_ml < 0.5


# ----------------------------------------------------------------------------- control case
@pytest.fixture(scope="module")
def control_rows(tmp_path_factory) -> list[dict[str, object]]:
    """A lesion-free control from the generator (another seed), generated once per module."""
    from synthetic import make_case

    folder = make_case(tmp_path_factory.mktemp("control") / "control", seed=424242, lesions=False)
    return segment_case_with_oracle_registration(folder)


@pytest.mark.slow
def test_a_lesion_free_control_has_under_half_a_millilitre_of_lesion(control_rows):
    total = sum(row["flair"].volume_pred_ml + row["dwi"].volume_pred_ml for row in control_rows)
    assert len(control_rows) == 5
    assert all(row["flair"].volume_ref_ml == 0 for row in control_rows)
    assert total < 0.5, [(r["flair"].volume_pred_ml, r["dwi"].volume_pred_ml) for r in control_rows]


# ----------------------------------------------------------------------------- real MS patient
def _ms_patient(realdata: Path) -> tuple[MRImage, MRImage, MRImage, MRImage]:
    folder = realdata / "open_ms_patient07"
    if not (folder / "FLAIR.nii.gz").is_file():
        pytest.skip(f"{folder} holds no FLAIR.nii.gz")
    flair_nifti = nib.load(folder / "FLAIR.nii.gz")
    flair = MRImage(flair_nifti.get_fdata(dtype=np.float32), flair_nifti.affine)
    mask_nifti = nib.load(folder / "lesion_mask.nii.gz")
    expert = MRImage(np.asarray(mask_nifti.dataobj), mask_nifti.affine)
    brain = flair.with_data(ndimage.binary_fill_holes(flair.data > 0).astype(np.uint8))
    prior = oracle_wm_prior(flair, np.eye(4))  # both grids are in MNI coordinates
    return flair, brain, prior, expert


@pytest.fixture(scope="module")
def ms_result(realdata: Path) -> SegmentationMetrics:
    flair, brain, prior, expert = _ms_patient(realdata)
    # the packaged lesion prior leaves patient07 out (tests/test_flair_method.py checks it)
    lesion_prior = lesion_prior_on(flair)
    gm_prior = mni_map_on(mni_template().gm, flair)
    result = segment_flair_lesions(
        flair, brain, prior, lesion_prior=lesion_prior, gm_prior=gm_prior
    )
    return evaluate_segmentation(expert, result.lesion_mask)


@pytest.mark.realdata
@pytest.mark.xfail(
    strict=True,
    reason=(
        "target not reached: Dice 0.39, lesion recall 0.16, lesion precision 0.86 (1.24 mL "
        "found of 1.30). The expert's lesions are small (37 in 1.3 mL) and their median is only "
        "about 2.5 SD of the local white-matter texture above it: the local-contrast seeds find "
        "the larger ones, the small faint ones stay below the seed contrast that keeps a "
        "lesion-free control under 0.5 mL."
    ),
)
def test_ms_patient_flair_dice_reaches_the_lst_ai_level(ms_result):
    metrics = ms_result
    assert metrics.dice >= 0.65, metrics


@pytest.mark.realdata
def test_ms_patient_regression_guard(ms_result):
    """Not the target (see the xfail above): guards the measured level against regressions. The
    run-time budgets (2 s per sample session, 10 s on this 1 mm volume) are measured by
    benchmarks/bench_segment.py, not asserted here: wall-clock bounds fail on a loaded machine."""
    metrics = ms_result
    assert metrics.dice >= 0.38, metrics
    assert metrics.volume_ref_ml == pytest.approx(1.30)
    assert metrics.lesion_precision >= 0.5, metrics
