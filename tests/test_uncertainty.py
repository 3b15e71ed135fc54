"""imaging/uncertainty.py and the noise-judged tracking classes, on small phantoms with anisotropic
voxels and non-cubic grids whose answers are known exactly."""

from __future__ import annotations

import dataclasses
import math
from datetime import date

import numpy as np
import pytest
from scipy import ndimage as ndi

from followup.analyze import _change_reach, _dwi_unseen, dwi_measures
from imaging.engines import LesionMap
from imaging.errors import ImagingError
from imaging.image import MRImage
from imaging.pipeline import SessionImages
from imaging.track import LesionSpread, track_lesions
from imaging.uncertainty import (
    WITHIN,
    Draw,
    FootprintReading,
    UncertaintyParams,
    change_estimate,
    change_label,
    estimate,
    footprint_reading,
    grid_motion,
    hidden_restricted_ml,
    hidden_restricted_share,
    label_volumes_mm3,
    lesion_fraction,
    missed_lesions,
    moved_grid,
    noise_sd,
    partial_volume_masks,
    perturbed_image,
    probability_sd_voxels,
    rigid_jitter,
    rim_share,
    with_noise,
)

SPACING = (0.9, 1.1, 3.3)
SHAPE = (44, 38, 14)


def _affine(spacing: tuple[float, float, float] = SPACING) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-20.0, -18.0, -22.0)
    return affine


def _image(data: np.ndarray) -> MRImage:
    return MRImage(data, _affine())


def _ellipsoid_fraction(
    shape: tuple[int, int, int], centre_mm: tuple[float, float, float], radii_mm: tuple[float, ...]
) -> np.ndarray:
    """Lesion fraction of each voxel of a soft-edged ellipsoid: 1 inside, 0 outside, a linear
    ramp of 2 mm across the surface (so every voxel's true fraction is known)."""
    ijk = np.indices(shape, dtype=np.float64)
    spacing = np.asarray(SPACING)[:, None, None, None]
    world = ijk * spacing
    r = np.sqrt(
        sum(((world[a] - centre_mm[a]) / radii_mm[a]) ** 2 for a in range(3))
    )  # 1 on the surface
    depth_mm = (1.0 - r) * min(radii_mm)
    return np.clip(0.5 + depth_mm / 2.0, 0.0, 1.0)


def test_levels_and_unknown_level() -> None:
    assert UncertaintyParams.level("off").draws == 0
    assert UncertaintyParams.level("Fast").draws == 4
    assert UncertaintyParams.level("standard") == UncertaintyParams()
    assert UncertaintyParams.level("full").draws == 16
    with pytest.raises(ImagingError, match="choose one of off, fast, standard, full"):
        UncertaintyParams.level("extreme")


def test_noise_sd_recovers_the_noise_beside_an_edge() -> None:
    rng = np.random.default_rng(3)
    data = np.full(SHAPE, 400.0)
    data[SHAPE[0] // 2 :] = 650.0  # a tissue edge across the brain
    noisy = data + rng.normal(0.0, 12.0, SHAPE)
    brain = np.zeros(SHAPE, np.uint8)
    brain[3:-3, 3:-3, 2:-2] = 1
    found = noise_sd(_image(noisy), _image(brain))
    assert found == pytest.approx(12.0, rel=0.05)
    # noise added at the estimated level doubles the variance (within the brain only)
    again = with_noise(_image(noisy), _image(brain), found, rng)
    assert noise_sd(again, _image(brain)) == pytest.approx(12.0 * math.sqrt(2), rel=0.06)
    assert np.array_equal(np.asarray(again.data)[brain == 0], noisy.astype(np.float32)[brain == 0])


def test_rigid_jitter_is_rigid_about_the_centre() -> None:
    rng = np.random.default_rng(1)
    centre = np.array([10.0, -4.0, 30.0])
    matrix = rigid_jitter(rng, centre, rotation_deg=2.0, translation_mm=0.0)
    rotation = matrix[:3, :3]
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    assert np.allclose(matrix @ np.append(centre, 1.0), np.append(centre, 1.0))
    angles = [
        math.degrees(math.acos((np.trace(rigid_jitter(rng, centre, 2.0, 1.0)[:3, :3]) - 1) / 2))
        for _ in range(400)
    ]
    # three normal angles of SD 2 degrees: the rotation angle's RMS is 2 * sqrt(3)
    assert math.sqrt(np.mean(np.square(angles))) == pytest.approx(2.0 * math.sqrt(3), rel=0.1)


def test_lesion_fraction_and_partial_volume_band_on_a_rendered_lesion() -> None:
    fraction = _ellipsoid_fraction(SHAPE, (20.0, 21.0, 23.0), (8.0, 6.0, 12.0))
    background, core = 300.0, 520.0
    image = _image((1 - fraction) * background + fraction * core)
    brain = _image(np.ones(SHAPE, np.uint8))
    mask = _image((fraction >= 0.5).astype(np.uint8))
    found = lesion_fraction(image, mask, brain)
    near = ndi.binary_dilation(fraction >= 0.5, iterations=1)
    assert np.abs(found[near] - fraction[near]).max() < 0.02
    inner, outer = partial_volume_masks(image, mask, brain, low=0.3, high=0.7)
    lesion = fraction >= 0.5
    ring = ndi.binary_dilation(lesion, structure=np.ones((3, 3, 3), bool)) & ~lesion
    assert np.array_equal(np.asarray(inner.data) > 0, lesion & (fraction >= 0.7 - 0.02)) or (
        abs(int(np.asarray(inner.data).sum()) - int((lesion & (fraction >= 0.7)).sum())) <= 2
    )
    expected_outer = lesion | (ring & (fraction >= 0.3))
    assert abs(int(np.asarray(outer.data).sum()) - int(expected_outer.sum())) <= 2
    assert np.asarray(inner.data).sum() < lesion.sum() < np.asarray(outer.data).sum()


def test_estimate_combines_the_sources_in_quadrature() -> None:
    found = estimate(10.0, [9.0, 11.0], band=(8.0, 12.0), other_sd=0.5, z=2.0)
    sd = math.sqrt(2.0 + (4.0 / math.sqrt(12.0)) ** 2 + 0.25)
    assert found.sd == pytest.approx(sd)
    assert (found.low, found.high) == pytest.approx((10.0 - 2 * sd, 10.0 + 2 * sd))
    clipped = estimate(0.1, [0.0, 0.3], z=1.96)
    assert clipped.low == 0.0
    assert math.isnan(estimate(1.0, [1.0]).low)  # one draw tells no spread
    assert math.isnan(estimate(math.nan, [1.0, 2.0]).high)


def test_a_band_centred_interval_also_covers_the_bands_middle() -> None:
    """The value at the band's low end (the DWI engine's threshold): the interval about the value
    is widened upwards to hold the interval about the band's midpoint; a value at the midpoint
    keeps its interval."""
    draws, band = [3.0, 3.4], (2.0, 8.0)
    plain = estimate(3.2, draws, band=band, z=2.0)
    centred = estimate(3.2, draws, band=band, z=2.0, band_centred=True)
    sd = math.sqrt(0.08 + (6.0 / math.sqrt(12.0)) ** 2)
    assert centred.sd == pytest.approx(plain.sd) == pytest.approx(sd)
    assert centred.low == pytest.approx(plain.low) == pytest.approx(max(3.2 - 2 * sd, 0.0))
    assert centred.high == pytest.approx(5.0 + 2 * sd) and plain.high == pytest.approx(3.2 + 2 * sd)
    middle = estimate(5.0, draws, band=band, z=2.0, band_centred=True)
    assert (middle.low, middle.high) == pytest.approx((5.0 - 2 * sd, 5.0 + 2 * sd))
    assert estimate(3.2, draws, z=2.0, band_centred=True) == estimate(3.2, draws, z=2.0)


def test_hidden_restricted_volume_of_flair_lesions_the_dwi_lesion_misses() -> None:
    """Three FLAIR lesions on a 2 x 2 x 5 mm ADC grid, filling their voxels to known shares:
    one 60 % restricted (rADC of pure restricted tissue 0.5), one unrestricted, one inside the DWI
    band (already counted). With the voxels' ADC noise the hidden volume is the first lesion's
    restricted part within 15 %; without restriction nothing is counted."""
    shape, spacing = (40, 40, 12), (2.0, 2.0, 5.0)
    affine = np.diag([*spacing, 1.0])
    rng = np.random.default_rng(4)
    share = np.zeros(shape)
    boxes = [np.s_[5:11, 5:10, 3:5], np.s_[20:26, 5:10, 3:5], np.s_[5:11, 25:30, 6:8]]
    for box in boxes:
        block = rng.uniform(0.3, 1.0, share[box].shape)
        share[box] = block
    restricted_part, pure = 0.6, 0.5
    radc = 1.0 + rng.normal(0.0, 0.08, shape)
    radc[boxes[0]] -= share[boxes[0]] * restricted_part * pure
    reached = np.zeros(shape, np.uint8)
    reached[boxes[2]] = 1
    images = [MRImage(a.astype(np.float32), affine) for a in (radc, share)]
    brain = MRImage(np.ones(shape, np.uint8), affine)
    voxel_ml = 20.0 / 1000.0
    expected = restricted_part * share[boxes[0]].sum() * voxel_ml
    found = hidden_restricted_ml(
        images[0],
        images[1],
        MRImage(reached, affine),
        brain,
        pure_deficit=pure,
        deficit_sd=0.08,
    )
    assert found == pytest.approx(expected, rel=0.15), (found, expected)
    radc_normal = MRImage((1.0 + rng.normal(0.0, 0.08, shape)).astype(np.float32), affine)
    none = hidden_restricted_ml(
        radc_normal, images[1], MRImage(reached, affine), brain, pure_deficit=pure, deficit_sd=0.08
    )
    assert none == 0.0


def test_hidden_restricted_upper_end_counts_what_the_adc_cannot_rule_out() -> None:
    """On a noiseless 2 x 2 x 5 mm rADC grid (the voxels' deficit SD given as 0.2): a lesion of two
    voxels filled to half, 40 % restricted (pure deficit 0.5), reads a deficit of 0.2 with a
    standard error of 0.28, not beyond noise, so the estimate counts nothing; its upper end is its
    whole volume (0.4 + 1.96 x 0.57 voxels, capped at its 1.0). A lesion of 60 whole voxels reading
    normal tissue adds only 1.96 x 3.10 voxels; the two together: 0.4 + 1.96 x sqrt(0.32 + 9.60)
    voxels (standard errors in quadrature, not bounds summed). A lesion inside the band adds
    nothing."""
    shape, spacing = (30, 24, 10), (2.0, 2.0, 5.0)
    affine = np.diag([*spacing, 1.0])
    share = np.zeros(shape)
    share[3, 4, 2:4] = 0.5  # tiny lesion: two voxels filled to half
    share[10:16, 10:15, 5:7] = 1.0  # large lesion, normal ADC
    share[20:23, 3:6, 1:3] = 1.0  # inside the DWI band: already counted
    radc = 1.0 - share * 0.4 * 0.5 * (np.arange(shape[0]) < 5)[:, None, None]
    radc[20:23, 3:6, 1:3] = 0.5
    reached = np.zeros(shape, np.uint8)
    reached[20:23, 3:6, 1:3] = 1
    brain = MRImage(np.ones(shape, np.uint8), affine)
    voxel_ml = 20.0 / 1000.0

    def hidden(lesions: np.ndarray, *, upper: bool) -> float:
        return hidden_restricted_ml(
            MRImage(radc.astype(np.float32), affine),
            MRImage(lesions.astype(np.float32), affine),
            MRImage(reached, affine),
            brain,
            pure_deficit=0.5,
            deficit_sd=0.2,
            z=1.96,
            upper=upper,
        )

    tiny = np.where(np.arange(shape[0])[:, None, None] < 5, share, 0.0)
    assert hidden(share, upper=False) == 0.0
    assert hidden(tiny, upper=True) == pytest.approx(1.0 * voxel_ml, rel=1e-5)
    tiny_se, large_se = 1.0 * 0.2 / np.sqrt(0.5) / 0.5, 60 * 0.2 / np.sqrt(60) / 0.5
    both = 0.4 + 1.96 * np.hypot(tiny_se, large_se)
    assert hidden(share, upper=True) == pytest.approx(both * voxel_ml, rel=1e-5)
    assert hidden(share, upper=True) < 0.15 * 61 * voxel_ml


def test_hidden_restricted_share_gives_a_dwi_lesion_the_rim_it_may_hold() -> None:
    """On a noiseless 2 x 2 x 5 mm rADC grid (deficit SD 0.2, pure deficit 0.5): a DWI lesion's
    band ``reached`` (2 x 2 voxels); around it a FLAIR rim of 12 whole voxels, 25 % restricted
    (deficit 0.125), and joined to the rim across a corner (26-neighbourhood) two half-filled
    voxels of normal ADC. The part (sum s 13, sum s^2 12.5) reads rho = 1.5 / 12.5 / 0.5 = 0.24;
    its upper end 0.24 + 1.96 x 0.2 / sqrt(12.5) / 0.5 = 0.4618 of each voxel's share. A FLAIR
    lesion touching no DWI lesion gets 0, as do the band's own voxels. The part's voxels sum to
    :func:`hidden_restricted_ml`'s upper end for that part alone."""
    shape, spacing = (20, 16, 9), (2.0, 2.0, 5.0)
    affine = np.diag([*spacing, 1.0])
    reached = np.zeros(shape, np.uint8)
    reached[5:7, 5:7, 4] = 1
    share = np.zeros(shape)
    share[4:8, 4:8, 4] = 1.0  # the ring around the band's 2 x 2 voxels: 12 voxels
    share[5:7, 5:7, 4] = 1.0  # the band itself (excluded from every part)
    share[8, 8, 5] = share[9, 9, 5] = 0.5  # joined to the ring across its corner (7, 7, 4)
    share[15:18, 12:14, 1:3] = 1.0  # far from every DWI lesion
    radc = np.ones(shape)
    radc[4:8, 4:8, 4] = 1.0 - 0.25 * 0.5
    radc[5:7, 5:7, 4] = 0.5
    brain = MRImage(np.ones(shape, np.uint8), affine)
    out = hidden_restricted_share(
        MRImage(radc.astype(np.float32), affine),
        MRImage(share.astype(np.float32), affine),
        MRImage(reached, affine),
        brain,
        pure_deficit=0.5,
        deficit_sd=0.2,
        z=1.96,
    )
    got = np.asarray(out.data, np.float64)
    assert got.shape == shape and np.allclose(out.affine, affine)
    ring = np.zeros(shape, bool)
    ring[4:8, 4:8, 4] = True
    ring[5:7, 5:7, 4] = False
    assert got[5:7, 5:7, 4].max() == 0.0  # the band's voxels are counted by the band
    assert got[15:18, 12:14, 1:3].max() == 0.0  # touches no DWI lesion
    joined = np.zeros(shape, bool)
    joined[8, 8, 5] = joined[9, 9, 5] = True
    s1, s2 = 12 + 1.0, 12 + 0.5
    rho = (12 * 0.125) / s2 / 0.5
    part_upper = min(rho + 1.96 * 0.2 / np.sqrt(s2) / 0.5, 1.0)
    assert part_upper == pytest.approx(0.4618, abs=1e-4)
    assert np.allclose(got[ring], part_upper, atol=1e-6)
    assert np.allclose(got[joined], 0.5 * part_upper, atol=1e-6)
    whole = hidden_restricted_ml(
        MRImage(radc.astype(np.float32), affine),
        MRImage(np.where(ring | joined, share, 0.0).astype(np.float32), affine),
        MRImage(reached, affine),
        brain,
        pure_deficit=0.5,
        deficit_sd=0.2,
        z=1.96,
        upper=True,
    )
    assert got.sum() * 20.0 / 1000.0 == pytest.approx(whole, rel=1e-5)
    assert got.sum() == pytest.approx(s1 * part_upper, rel=1e-6)


def test_rim_share_is_the_band_s_26_neighbourhood_without_fluid() -> None:
    """A band of 2 x 2 x 1 voxels on a 2 x 2 x 5 mm grid: its rim is the 4 x 4 x 3 box around it
    less the band (44 voxels); a rim voxel reading cerebrospinal fluid (rADC 4, a deficit of -3,
    beyond -3 x 0.1) and one outside the brain are left out; a voxel two voxels away is not rim.
    Its fit then reads a rim of normal ADC as holding no restricted tissue beyond its noise."""
    shape, affine = (10, 9, 6), np.diag([2.0, 2.0, 5.0, 1.0])
    reached = np.zeros(shape, np.uint8)
    reached[4:6, 3:5, 2] = 1
    radc = np.ones(shape, np.float32)
    radc[3, 2, 1] = 4.0  # fluid in a corner of the rim
    brain = np.ones(shape, np.uint8)
    brain[6, 5, 3] = 0  # the opposite corner lies outside the brain
    rim = rim_share(
        MRImage(radc, affine),
        MRImage(reached, affine),
        MRImage(brain, affine),
        deficit_sd=0.1,
    )
    got = np.asarray(rim.data)
    expected = np.zeros(shape, bool)
    expected[3:7, 2:6, 1:4] = True
    expected[4:6, 3:5, 2] = False
    expected[3, 2, 1] = expected[6, 5, 3] = False
    assert got.dtype == np.float32 and np.array_equal(got > 0, expected)
    assert set(np.unique(got)) == {0.0, 1.0} and int(got.sum()) == 42
    share = hidden_restricted_share(
        MRImage(radc, affine),
        rim,
        MRImage(reached, affine),
        MRImage(brain, affine),
        pure_deficit=0.5,
        deficit_sd=0.1,
        z=1.96,
    )
    # normal ADC: rho 0, the upper end 1.96 x 0.1 / sqrt(42) / 0.5 of each voxel
    assert np.allclose(np.asarray(share.data)[expected], 1.96 * 0.1 / np.sqrt(42) / 0.5)


def test_missed_lesions_keeps_only_the_lesions_this_session_did_not_touch() -> None:
    shape = (12, 9, 7)  # non-cubic, anisotropic voxels
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    share = np.zeros(shape, np.float32)
    share[1:3, 1:3, 1:3] = 0.8  # lesion A: found here too (its band touches it)
    share[3, 1, 1] = 0.2  # a rim below min_share: not part of any lesion
    share[8:10, 5:7, 4:6] = 0.6  # lesion B: missed here
    found = np.zeros(shape, np.uint8)
    found[3:5, 2, 2] = 1  # touches lesion A across a face (26-neighbourhood)
    missed = missed_lesions(MRImage(share, affine), MRImage(found, affine))
    out = np.asarray(missed.data)
    assert out.shape == shape and np.allclose(missed.affine, affine)
    expected = np.zeros(shape, np.float32)
    expected[8:10, 5:7, 4:6] = 0.6
    np.testing.assert_array_equal(out, expected)
    nothing = missed_lesions(MRImage(share, affine), MRImage(np.zeros(shape, np.uint8), affine))
    np.testing.assert_array_equal(np.asarray(nothing.data), np.where(share >= 0.3, share, 0))


def test_change_estimate_reaches_over_lesions_seen_in_one_session_only() -> None:
    before = [1.0, 1.1, 0.9, 1.0]
    after = [0.5, 0.6, 0.4, 0.5]  # a lesion of 0.5 mL missed after: paired SD 0
    plain = change_estimate(1.0, 0.5, before, after, other_sd=0.05)
    assert (plain.low, plain.high) == pytest.approx((-0.5 - 1.96 * 0.05, -0.5 + 1.96 * 0.05))
    assert plain.label == "decrease"
    # the after-session still reads 0.45 mL of lesion tissue where it missed the lesion
    found = change_estimate(1.0, 0.5, before, after, other_sd=0.05, reach=(0.0, 0.45))
    assert found.value == pytest.approx(-0.5) and found.sd == pytest.approx(plain.sd)
    assert (found.low, found.high) == pytest.approx((plain.low, plain.high + 0.45))
    assert found.label == "within noise"
    # the other way round: the before-session reads tissue where only the after-session found one
    grown = change_estimate(0.5, 1.0, after, before, other_sd=0.05, reach=(0.3, 0.0))
    assert (grown.low, grown.high) == pytest.approx((0.5 - 1.96 * 0.05 - 0.3, 0.5 + 1.96 * 0.05))
    assert grown.label == "increase"


def test_change_estimate_pairs_the_draws() -> None:
    shared = [0.0, 0.8, -0.6, 0.3]  # e.g. the template jitter of each draw, shared by both sessions
    before = [5.0 + e for e in shared]
    after = [6.0 + e + d for e, d in zip(shared, [0.01, -0.01, 0.02, -0.02], strict=True)]
    found = change_estimate(5.0, 6.0, before, after)
    assert found.value == pytest.approx(1.0)
    assert found.sd == pytest.approx(float(np.std([0.01, -0.01, 0.02, -0.02], ddof=1)))
    assert found.label == "increase"
    # the same change with the shared part unpaired would be within noise
    unpaired = change_estimate(5.0, 6.0, before, list(reversed(after)))
    assert unpaired.label == WITHIN
    # the partial-volume band of the change: the change at the two cuts
    banded = change_estimate(5.0, 6.0, before, after, band_before=(4.0, 6.0), band_after=(4.2, 7.8))
    assert banded.sd == pytest.approx(math.hypot(found.sd, (1.8 - 0.2) / math.sqrt(12.0)))
    assert change_label(-3.0, -1.0) == "decrease"
    assert change_label(-1.0, 2.0) == WITHIN
    assert change_label(math.nan, 1.0) == ""


def test_a_draws_centred_change_also_holds_the_draws_mean_change() -> None:
    """rADC 0.60 -> 0.61 on the images; the draws (each a resampled image) read both sessions
    higher, the first by more: their paired changes 0.005, 0.002, 0.002, 0.007 (mean 0.004, SD
    sqrt(6) / 1000). About the value alone the change is an increase; the draws' mean change,
    0.004 - 2 SD, lies below 0, so with both the change is within noise."""
    before, after = [0.62, 0.63, 0.61, 0.62], [0.625, 0.632, 0.612, 0.627]
    sd = math.sqrt(6.0) / 1000.0
    plain = change_estimate(0.60, 0.61, before, after, z=2.0)
    assert plain.sd == pytest.approx(sd)
    assert (plain.low, plain.high) == pytest.approx((0.01 - 2 * sd, 0.01 + 2 * sd))
    assert plain.label == "increase"
    centred = change_estimate(0.60, 0.61, before, after, z=2.0, draws_centred=True)
    assert centred.value == pytest.approx(0.01) and centred.sd == pytest.approx(sd)
    assert (centred.low, centred.high) == pytest.approx((0.004 - 2 * sd, 0.01 + 2 * sd))
    assert centred.label == WITHIN
    # draws whose mean change is the value's change: the same interval; the reach still adds
    level = [b + 0.01 + d for b, d in zip(before, [0.001, -0.002, 0.002, -0.001], strict=True)]
    assert change_estimate(0.60, 0.61, before, level, draws_centred=True) == change_estimate(
        0.60, 0.61, before, level
    )
    reached = change_estimate(0.60, 0.61, before, after, z=2.0, draws_centred=True, reach=(0.1, 0))
    assert reached.low == pytest.approx(centred.low - 0.1) and reached.high == centred.high


def test_only_the_dwi_radc_change_holds_the_draws_mean_change() -> None:
    """Two sessions whose rADC, FLAIR-lesion rADC and FLAIR volume draws stand off their values
    alike (scaled): the DWI lesion's rADC change holds the draws' mean change and is within noise,
    the others are not widened and are increases (``UncertaintyParams.draws_centred``)."""
    from followup.analyze import _change_cells, _Spread

    offsets = [[0.020, 0.030, 0.010, 0.020], [0.015, 0.022, 0.002, 0.017]]
    values = [0.60, 0.61]
    rows: list[dict[str, object]] = []
    spreads = []
    for value, offset in zip(values, offsets, strict=True):
        radc = [value + o for o in offset]
        volume = [100 * r for r in radc]
        rows.append(
            {"radc": value, "flair_lesion_radc": value, "flair_lesion_volume_ml": 100 * value}
        )
        spreads.append(
            _Spread(
                draws={
                    "radc": radc,
                    "flair_lesion_volume_ml": volume,
                    "dwi_lesion_volume_ml": [math.nan] * 4,
                    "flair_lesion_radc": radc,
                },
                bands={},
                other_sd={},
            )
        )
    settings = dataclasses.replace(UncertaintyParams(), change_relative_sd=0.0)
    assert settings.draws_centred == ("radc",)
    _change_cells(rows, spreads, settings)
    second = rows[1]
    sd = float(np.std([0.005, 0.002, 0.002, 0.007], ddof=1))
    assert second["radc_change_ci_low"] == pytest.approx(0.004 - 1.96 * sd)
    assert second["radc_change_beyond_noise"] == WITHIN
    assert second["flair_lesion_radc_change_ci_low"] == pytest.approx(0.01 - 1.96 * sd)
    assert second["flair_lesion_radc_change_beyond_noise"] == "increase"
    assert second["flair_lesion_volume_change_ml_ci_low"] == pytest.approx(100 * (0.01 - 1.96 * sd))
    assert second["flair_lesion_volume_change_beyond_noise"] == "increase"


def test_probability_sd() -> None:
    p = np.zeros(SHAPE, np.float32)
    p[:4, 0, 0] = 0.5
    p[4:6, 0, 0] = 0.9
    assert probability_sd_voxels(_image(p)) == pytest.approx(math.sqrt(4 * 0.25 + 2 * 0.09))
    assert probability_sd_voxels(None) == 0.0


def test_label_volumes_assign_nearby_voxels_to_their_lesion() -> None:
    labels = np.zeros(SHAPE, np.int32)
    labels[5:9, 5:9, 3:5] = 1
    labels[30:34, 20:25, 8:10] = 2
    grown = ndi.binary_dilation(labels == 1, iterations=1)  # one voxel more all round
    crumb = np.zeros(SHAPE, bool)
    crumb[20, 30, 12] = True  # far from both
    mask = grown | (labels == 2) | crumb
    voxel = float(np.prod(SPACING))
    volumes = label_volumes_mm3(labels, [mask, labels > 0], SPACING, reach_mm=3.4)
    assert volumes.shape == (2, 3)
    assert volumes[0, 1] == pytest.approx(grown.sum() * voxel)
    assert volumes[0, 2] == pytest.approx((labels == 2).sum() * voxel)
    assert volumes[1, 1:] == pytest.approx(
        [(labels == 1).sum() * voxel, (labels == 2).sum() * voxel]
    )
    assert volumes[:, 0].tolist() == [0.0, 0.0]
    # within 1.2 mm only the in-plane face neighbours (0.9, 1.1 mm) count: not the in-plane
    # diagonals (1.42 mm), not the 3.3 mm slices
    near = label_volumes_mm3(labels, [grown], SPACING, reach_mm=1.2)
    cross = ndi.generate_binary_structure(2, 1)[:, :, None]
    in_plane = ndi.binary_dilation(labels == 1, structure=cross)
    assert near[0, 1] == pytest.approx(in_plane.sum() * voxel)


def _box(lo: tuple[int, int, int], hi: tuple[int, int, int]) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    return mask


def _spread(mask: np.ndarray, wobble: int, phase: int = 0) -> LesionSpread:
    """Draws that grow or shrink the lesion by ``wobble`` voxels in plane, alternately (``phase``
    1 starts with growing: draws independent of those of phase 0)."""
    draws = []
    for d in range(6):
        step = wobble if (d + phase) % 2 else -wobble
        if step > 0:
            draws.append(ndi.binary_dilation(mask, np.ones((3, 3, 1), bool), iterations=step))
        elif step < 0:
            draws.append(ndi.binary_erosion(mask, np.ones((3, 3, 1), bool), iterations=-step))
        else:
            draws.append(mask.copy())
    return LesionSpread(draws=draws, inner=mask, outer=mask)


@pytest.mark.parametrize(("wobble", "expected"), [(0, "enlarging"), (2, "stable")])
def test_enlarging_needs_a_change_beyond_noise(wobble: int, expected: str) -> None:
    before = _box((10, 10, 4), (20, 18, 8))
    after = _box((10, 10, 4), (22, 20, 8))  # 12 x 10 against 10 x 8 voxels: +50 %
    masks = [("ses-1", _image(before.astype(np.uint8))), ("ses-2", _image(after.astype(np.uint8)))]
    labels = _image(np.ones(SHAPE, np.uint8))
    rows = track_lesions(
        masks,
        source="flair",
        hemispheres=labels,
        regions=labels,
        spreads=[_spread(before, wobble), _spread(after, wobble, phase=1)],
    )
    second = rows[1].rows[0]
    assert second["change"] == expected
    voxel_ml = float(np.prod(SPACING)) / 1000
    assert second["volume_change_ml"] == pytest.approx(round((120 - 80) * 4 * voxel_ml, 4))
    assert second["change_beyond_noise"] == ("increase" if wobble == 0 else WITHIN)
    assert second["volume_ml_ci_low"] <= second["volume_ml"] <= second["volume_ml_ci_high"]
    # without draws the 30 % rule alone decides, and the interval cells stay empty
    plain = track_lesions(masks, source="flair", hemispheres=labels, regions=labels)
    assert plain[1].rows[0]["change"] == "enlarging"
    assert plain[1].rows[0]["volume_ml_ci_low"] == ""


def test_new_and_resolved_lesions_are_judged_by_their_own_interval() -> None:
    lesion = _box((10, 10, 4), (20, 18, 8))
    empty = np.zeros(SHAPE, bool)
    labels = _image(np.ones(SHAPE, np.uint8))
    masks = [
        ("ses-1", _image(empty.astype(np.uint8))),
        ("ses-2", _image(lesion.astype(np.uint8))),
        ("ses-3", _image(empty.astype(np.uint8))),
    ]
    sure = [_spread(empty, 0), _spread(lesion, 0), _spread(empty, 0)]
    rows = track_lesions(masks, source="flair", hemispheres=labels, regions=labels, spreads=sure)
    new, resolved = rows[1].rows[0], rows[2].rows[0]
    assert (new["change"], new["change_beyond_noise"]) == ("new", "increase")
    assert (resolved["change"], resolved["change_beyond_noise"]) == ("resolved", "decrease")
    assert resolved["volume_change_ml"] == pytest.approx(-new["volume_ml"])
    # a lesion some draws do not find at all: its interval reaches 0, so within noise
    flicker = LesionSpread(draws=[lesion, empty, lesion, empty], inner=lesion, outer=lesion)
    rows = track_lesions(
        masks,
        source="flair",
        hemispheres=labels,
        regions=labels,
        spreads=[sure[0], flicker, sure[2]],
    )
    assert rows[1].rows[0]["change_beyond_noise"] == WITHIN
    assert rows[2].rows[0]["change_beyond_noise"] == WITHIN


def test_a_dwi_lesion_volume_interval_holds_its_deficit_band_and_its_change_keeps_the_trace_band() -> (
    None
):
    """A DWI lesion of 10 x 8 x 4 voxels (0.9 x 1.1 x 3.3 mm) whose band on the ADC deficit runs
    from itself to 14 x 12 x 4 voxels, the draws all alike: its volume's interval is the band's SD
    ((672 - 320) voxels / sqrt(12)) about the value and about the band's midpoint, exactly; its
    change keeps the (trace) band the change is judged by, so it is what it is without the
    deficit band."""
    before = _box((10, 10, 4), (20, 18, 8))
    after = _box((10, 10, 4), (22, 20, 8))
    wide = [_box((8, 8, 4), (22, 20, 8)), _box((8, 8, 4), (24, 22, 8))]
    masks = [("ses-1", _image(before.astype(np.uint8))), ("ses-2", _image(after.astype(np.uint8)))]
    labels = _image(np.ones(SHAPE, np.uint8))

    def spreads(deficit_band: bool) -> list[LesionSpread]:
        return [
            LesionSpread(
                draws=[m.copy() for _ in range(4)],
                inner=m,
                outer=m,
                volume_band=(m, w) if deficit_band else None,
            )
            for m, w in zip((before, after), wide, strict=True)
        ]

    with_band, without = (
        track_lesions(masks, source="dwi", hemispheres=labels, regions=labels, spreads=spreads(b))
        for b in (True, False)
    )
    voxel_ml = float(np.prod(SPACING)) / 1000
    value, high = 320 * voxel_ml, 672 * voxel_ml
    sd = (high - value) / np.sqrt(12.0)
    first = with_band[0].rows[0]
    assert first["volume_ml_ci_low"] == pytest.approx(round(value - 1.96 * sd, 4))
    assert first["volume_ml_ci_high"] == pytest.approx(round((value + high) / 2 + 1.96 * sd, 4))
    plain = without[0].rows[0]
    assert plain["volume_ml_ci_low"] == plain["volume_ml_ci_high"] == pytest.approx(round(value, 4))
    change_cells = ("volume_change_ml", "volume_change_ml_ci_low", "volume_change_ml_ci_high")
    assert {c: with_band[1].rows[0][c] for c in change_cells} == {
        c: without[1].rows[0][c] for c in change_cells
    }


def test_a_dwi_lesion_volume_band_counts_its_rim_as_shares_within_its_own_reach() -> None:
    """A DWI lesion of 10 x 8 x 4 voxels (0.9 x 1.1 x 3.3 mm) whose band's outer end also holds,
    two slices (6.6 mm) above it, a rim of 10 x 8 voxels each given a share of 0.5 (the restricted
    tissue it may hold, :func:`imaging.uncertainty.hidden_restricted_share`): with a reach of
    8 mm the band's outer end is 320 + 40 voxels, exactly; with the 3 mm the draws use, 320."""
    lesion = _box((10, 10, 4), (20, 18, 8))
    outer = lesion.astype(np.float32)
    outer[10:20, 10:18, 9] = 0.5
    masks = [("ses-1", _image(lesion.astype(np.uint8)))]
    labels = _image(np.ones(SHAPE, np.uint8))
    voxel_ml = float(np.prod(SPACING)) / 1000
    value = 320 * voxel_ml
    for reach_mm, high in ((8.0, 360 * voxel_ml), (3.0, value)):
        spread = LesionSpread(
            draws=[lesion.copy() for _ in range(4)],
            inner=lesion,
            outer=lesion,
            volume_band=(lesion, outer),
            volume_band_reach_mm=reach_mm,
        )
        row = track_lesions(
            masks, source="dwi", hemispheres=labels, regions=labels, spreads=[spread]
        )[0].rows[0]
        sd = (high - value) / np.sqrt(12.0)
        assert row["volume_ml_ci_high"] == pytest.approx(round((value + high) / 2 + 1.96 * sd, 4))


def _scan(fraction: np.ndarray, contrast: float, seed: int, noise: float = 1.0) -> MRImage:
    """A scan of background 100 with ``fraction`` of lesion tissue of relative signal
    ``contrast`` (negative: darker, as on the ADC) and white noise of SD ``noise``."""
    rng = np.random.default_rng(seed)
    return _image(100.0 * (1.0 + contrast * fraction) + rng.normal(0.0, noise, SHAPE))


LESION_CENTRE_MM = (20.0, 21.0, 23.0)


@pytest.mark.parametrize(("contrast", "bright"), [(0.4, True), (-0.45, False)])
def test_footprint_reading_recovers_the_tissue_a_footprint_holds(
    contrast: float, bright: bool
) -> None:
    fraction = _ellipsoid_fraction(SHAPE, LESION_CENTRE_MM, (3.0, 3.5, 5.0))
    share = _image(fraction.astype(np.float32))
    brain = _image(np.ones(SHAPE, np.uint8))
    # noise SD 1 on a background of 100: each voxel's excess has SD 0.01
    expected_se = 0.01 / math.sqrt(float(np.sum(fraction**2)))
    found = footprint_reading(_scan(fraction, contrast, 1), share, brain, bright=bright)
    assert found.signal == pytest.approx(abs(contrast), abs=4 * expected_se)
    assert found.se == pytest.approx(expected_se, rel=0.25)
    # the same place on a scan without the lesion reads nothing beyond its noise
    gone = footprint_reading(_scan(fraction, 0.0, 2), share, brain, bright=bright)
    assert abs(gone.signal) < 4 * expected_se
    # the share of the first scan's tissue the second may hold: all of it where the lesion is
    # still there (half of it filled: half), little beyond the noise where it is gone
    half = footprint_reading(_scan(fraction, contrast / 2, 3), share, brain, bright=bright)
    assert found.share_of(found, 1.96) == pytest.approx(1.0)
    assert half.share_of(found, 1.96) == pytest.approx(0.5, abs=0.06)
    assert gone.share_of(found, 1.96) < 0.1
    # an empty footprint or no background to read: unknown, which may hold everything
    nothing = footprint_reading(_scan(fraction, contrast, 4), share.with_data(0 * fraction), brain)
    assert math.isnan(nothing.signal)
    assert nothing.share_of(found, 1.96) == 1.0


def _reading_spread(mask: np.ndarray, scan: MRImage) -> LesionSpread:
    """A session sure of its lesion (six identical draws) that reads ``scan`` over footprints."""
    brain = _image(np.ones(SHAPE, np.uint8))

    def read(footprint: np.ndarray) -> FootprintReading:
        return footprint_reading(scan, scan.with_data(footprint.astype(np.float32)), brain)

    return LesionSpread(draws=[mask.copy() for _ in range(6)], inner=mask, outer=mask, read=read)


@pytest.mark.parametrize(("still_there", "expected"), [(True, WITHIN), (False, "decrease")])
def test_a_lesion_one_scan_missed_is_gone_only_when_the_scan_shows_it_gone(
    still_there: bool, expected: str
) -> None:
    fraction = _ellipsoid_fraction(SHAPE, LESION_CENTRE_MM, (3.0, 3.5, 5.0))
    lesion = fraction >= 0.5
    empty = np.zeros(SHAPE, bool)
    labels = _image(np.ones(SHAPE, np.uint8))
    first = _scan(fraction, 0.4, 5)
    # the second scan holds the lesion's tissue (its engine missed it) or not (it resolved)
    second = _scan(fraction, 0.4 if still_there else 0.0, 6)
    spreads = [_reading_spread(lesion, first), _reading_spread(empty, second)]
    masks = [("ses-1", _image(lesion.astype(np.uint8))), ("ses-2", _image(empty.astype(np.uint8)))]
    rows = track_lesions(masks, source="flair", hemispheres=labels, regions=labels, spreads=spreads)
    gone = rows[1].rows[0]
    assert gone["change"] == "resolved"
    assert gone["change_beyond_noise"] == expected
    assert gone["volume_change_ml"] == pytest.approx(-rows[0].rows[0]["volume_ml"])
    # the loss reaches up over what the second scan still holds: all of the lesion, or only
    # what its noise cannot rule out
    volume = rows[0].rows[0]["volume_ml"]
    assert gone["volume_change_ml_ci_high"] == pytest.approx(
        0.0 if still_there else -volume, abs=0.1 * volume
    )
    # and the other way round: a lesion found only on the second scan is new beyond noise only
    # when the first scan shows no tissue there
    appeared = track_lesions(
        [("ses-1", masks[1][1]), ("ses-2", masks[0][1])],
        source="flair",
        hemispheres=labels,
        regions=labels,
        spreads=[_reading_spread(empty, second), _reading_spread(lesion, first)],
    )[1].rows[0]
    assert appeared["change"] == "new"
    assert appeared["change_beyond_noise"] == ("within noise" if still_there else "increase")


@pytest.mark.parametrize("grown", [False, True])
def test_a_followed_lesion_changes_beyond_noise_only_when_both_scans_read_it_changed(
    grown: bool,
) -> None:
    radii = (3.0, 3.5, 5.0)
    before = _ellipsoid_fraction(SHAPE, LESION_CENTRE_MM, radii)
    after = _ellipsoid_fraction(
        SHAPE, LESION_CENTRE_MM, tuple(1.4 * r for r in radii) if grown else radii
    )
    # the same tissue (or a lesion grown 1.4-fold across) segmented a little differently:
    # the second mask cut lower on the same partial-volume edge
    first, second = before >= 0.6, after >= 0.35
    labels = _image(np.ones(SHAPE, np.uint8))
    masks = [("ses-1", _image(first.astype(np.uint8))), ("ses-2", _image(second.astype(np.uint8)))]
    scans = (_scan(before, 0.4, 7), _scan(after, 0.4, 8))
    sure = [_reading_spread(first, scans[0]), _reading_spread(second, scans[1])]
    rows = track_lesions(masks, source="flair", hemispheres=labels, regions=labels, spreads=sure)
    followed = rows[1].rows[0]
    assert followed["volume_change_ml"] > 0
    # the draws alone (identical: each image segmented the same way every time) call it
    blind = [dataclasses.replace(spread, read=None) for spread in sure]
    alone = track_lesions(masks, source="flair", hemispheres=labels, regions=labels, spreads=blind)
    assert alone[1].rows[0]["change_beyond_noise"] == "increase"
    # the two scans read over one footprint: the same tissue, within noise; grown, an increase
    assert followed["change_beyond_noise"] == ("increase" if grown else WITHIN)
    assert followed["change"] == ("enlarging" if grown else "stable")


def test_moved_grid_samples_the_tissue_between_the_voxels() -> None:
    # a linear ramp along each axis: linear interpolation is exact on it
    i, j, k = np.indices(SHAPE, dtype=np.float64)
    ramp = 100.0 + 3.0 * i + 5.0 * j + 7.0 * k
    shift = np.array([0.5, -0.25, 0.4])
    motion = np.eye(4)
    motion[:3, 3] = np.asarray(SPACING) * shift
    moved = moved_grid(_image(ramp), motion)
    assert np.allclose(
        moved.affine[:3, 3], _affine()[:3, 3] + np.asarray(SPACING) * shift, atol=1e-9
    )
    inner = (slice(1, -1), slice(1, -1), slice(1, -1))  # edge voxels sample outside the image
    expected = ramp + 3.0 * shift[0] + 5.0 * shift[1] + 7.0 * shift[2]
    assert np.allclose(np.asarray(moved.data)[inner], expected[inner], atol=1e-3)
    # a draw's image: the same grid with noise added only inside the brain
    brain = np.zeros(SHAPE, np.uint8)
    brain[5:30, 6:30, 3:11] = 1
    drawn = perturbed_image(
        _image(ramp),
        _image(brain),
        noise_sd_units=4.0,
        motion=motion,
        rng=np.random.default_rng(0),
    )
    assert np.allclose(drawn.affine, moved.affine)
    difference = np.asarray(drawn.data) - np.asarray(moved.data)
    inside = np.asarray(moved_grid(_image(brain.astype(np.float32)), motion).data) > 0.99
    assert float(np.std(difference[inside])) == pytest.approx(4.0, rel=0.05)
    outside = np.asarray(moved_grid(_image(brain.astype(np.float32)), motion).data) < 0.01
    assert np.all(difference[outside] == 0)


def test_grid_motion_turns_about_the_centre_and_shifts_within_half_a_voxel() -> None:
    rng = np.random.default_rng(5)
    image = _image(np.zeros(SHAPE, np.float32))
    centre = np.array([0.0, 2.0, -1.0])
    for _ in range(50):
        motion = grid_motion(rng, image, centre, rotation_deg=0.0)
        assert np.allclose(motion[:3, :3], np.eye(3))
        shift_vox = np.linalg.solve(image.affine[:3, :3], motion[:3, 3])
        assert np.all(np.abs(shift_vox) <= 0.5)
    turned = grid_motion(rng, image, centre, rotation_deg=3.0)
    assert not np.allclose(turned[:3, :3], np.eye(3))
    assert np.linalg.det(turned[:3, :3]) == pytest.approx(1.0)


def _thick_slice_dwi(radc_lesion: float, seed: int) -> tuple[list[MRImage], float]:
    """Restricted ellipsoids rendered at 1 mm and acquired at 2 x 2 x 5 mm (the b = 0 and
    b = 1000 signals of lesion and white matter mixed in each voxel, as a scanner mixes them),
    with their true volume (mL): the lesions' own rADC ``radc_lesion``, b = 0 30 % above white
    matter's, white matter ADC 720 um2/s, noise 1 % of white matter's b = 0."""
    fine_shape, factors = (120, 130, 90), (2, 2, 5)
    fine = np.diag([1.0, 1.0, 1.0, 1.0])
    fine[:3, 3] = [-(n - 1) / 2.0 for n in fine_shape]
    ijk = np.indices(fine_shape, dtype=np.float64)
    xyz = [ijk[a] + fine[a, 3] for a in range(3)]

    def ellipsoid(centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
        return sum(((xyz[a] - centre[a]) / radii[a]) ** 2 for a in range(3)) <= 1.0

    brain = ellipsoid((0, 0, 0), (55, 60, 42))
    lesion = np.logical_or.reduce(
        [
            ellipsoid(centre, radii)
            for centre, radii in (
                ((15, 10, 4), (7, 9, 6)),
                ((-20, 5, -8), (5, 6, 4)),
                ((5, -25, 10), (4, 4, 3.5)),
                ((-10, 25, 14), (9, 5, 5)),
            )
        ]
    )
    b = 1000e-6
    s0 = np.where(lesion, 1.3, 1.0) * brain
    sb = s0 * np.exp(-b * np.where(lesion, radc_lesion * 720.0, 720.0))

    def acquire(volume: np.ndarray) -> np.ndarray:
        n = [size // f for size, f in zip(fine_shape, factors, strict=True)]
        cut = volume[: n[0] * 2, : n[1] * 2, : n[2] * 5]
        return cut.reshape(n[0], 2, n[1], 2, n[2], 5).mean(axis=(1, 3, 5))

    rng = np.random.default_rng(seed)
    inside = acquire(brain.astype(float)) >= 0.5
    s0_a = acquire(s0) + rng.normal(0, 0.01, inside.shape)
    sb_a = acquire(sb) + rng.normal(0, 0.01, inside.shape)
    adc = np.where(inside, np.log(np.maximum(s0_a, 1e-3) / np.maximum(sb_a, 1e-3)) / b, 0.0)
    coarse = fine @ np.diag([*factors, 1])
    coarse[:3, 3] = fine[:3, 3] + (np.array(factors) - 1) / 2.0
    images = [
        MRImage((1000 * sb_a * inside).astype(np.float32), coarse, sequence="DWI"),
        MRImage(adc.astype(np.float32), coarse, sequence="ADC"),
        MRImage(inside.astype(np.uint8), coarse),
        MRImage(np.where(inside, 0.9, 0.0).astype(np.float32), coarse),
    ]
    return images, float(lesion.sum()) / 1000.0


@pytest.mark.parametrize("radc_lesion", [0.45, 0.62])
def test_dwi_band_on_the_adc_deficit_brackets_thick_slice_lesions(radc_lesion: float) -> None:
    """On 5 mm slices a voxel half filled with a mildly restricted lesion (rADC 0.62) reads above
    rADC 0.75 and is not in the DWI lesion; the band cut on the ADC deficit brackets the true
    restricted volume (inner below it, outer above it), for a strongly restricted lesion too."""
    from imaging.segment import segment_dwi_lesions
    from imaging.uncertainty import adc_deficit

    images, true_ml = _thick_slice_dwi(radc_lesion, seed=3)
    result = segment_dwi_lesions(*images)
    assert result.radc is not None
    voxel_ml = images[0].voxel_volume_mm3 / 1000.0
    found_ml = float(np.count_nonzero(result.lesion_mask.data)) * voxel_ml
    inner, outer = partial_volume_masks(
        adc_deficit(result.radc, images[2]), result.lesion_mask, images[2]
    )
    inner_ml, outer_ml = (float(np.count_nonzero(m.data)) * voxel_ml for m in (inner, outer))
    assert inner_ml < true_ml < outer_ml, (inner_ml, found_ml, true_ml, outer_ml)
    if radc_lesion > 0.6:
        assert found_ml < 0.9 * true_ml, (found_ml, true_ml)


def test_pure_lesion_adc_separates_the_lesion_from_the_normal_tissue_of_its_voxels() -> None:
    """Voxels filled to shares 0.3-1 with a lesion of ADC 380 um2/s, the rest white matter of
    720, two voxels touching CSF: the mean of the voxels at least half filled reads far above the
    lesion; the two-tissue least squares gives the lesion's own ADC within 3 %."""
    from imaging.quantify import pure_lesion_adc

    shape, affine = (30, 26, 9), np.diag([2.0, 2.0, 5.0, 1.0])
    rng = np.random.default_rng(8)
    share = np.zeros(shape)
    share[10:20, 8:16, 3:6] = rng.uniform(0.3, 1.0, (10, 8, 3))
    adc = 720.0 + share * (380.0 - 720.0) + rng.normal(0.0, 40.0, shape)
    adc[10, 8, 3] = adc[11, 8, 3] = 2600.0  # CSF in the voxel
    images = [MRImage(a.astype(np.float32), affine) for a in (adc, share)]
    mostly = share >= 0.5
    assert float(np.mean(adc[mostly])) > 1.1 * 380.0
    found, error, voxels = pure_lesion_adc(images[0], images[1], 720.0)
    assert found == pytest.approx(380.0, rel=0.03) and voxels == 238
    # 240 voxels of noise SD 40: the slope's error is 40 / sqrt(sum s^2)
    used = (share >= 0.3) & (adc < 1.5 * 720.0)
    assert error == pytest.approx(40.0 / math.sqrt(np.sum(share[used] ** 2)), rel=0.15)
    assert math.isnan(pure_lesion_adc(images[0], images[1], math.nan).lower())


@pytest.mark.parametrize("voxels", [4, 12, 60])
def test_pure_lesion_adc_error_matches_the_spread_of_refits(voxels: int) -> None:
    """A small lesion filling a few voxels of a 2 x 2 x 5 mm ADC map to random shares: over 400
    new noise draws the fitted lesion ADC spreads as the fits' own standard errors say (their
    RMS within 15 % of the estimates' SD), and the lower ends of the 95 % intervals (Student's t:
    few voxels) lie under the truth 97.5 % of the time (95-99.5 %)."""
    from imaging.quantify import pure_lesion_adc

    shape, affine = (12, 10, 6), np.diag([2.0, 2.0, 5.0, 1.0])
    rng = np.random.default_rng(voxels)
    share = np.zeros(shape)
    share.flat[rng.choice(share.size, voxels, replace=False)] = rng.uniform(0.3, 0.9, voxels)
    fits, errors, lowers = [], [], []
    for _ in range(400):
        adc = 740.0 + share * (400.0 - 740.0) + rng.normal(0.0, 35.0, shape)
        found = pure_lesion_adc(
            MRImage(adc.astype(np.float32), affine), MRImage(share, affine), 740.0
        )
        assert found.voxels == voxels
        fits.append(found.adc_um2s)
        errors.append(found.se_um2s)
        lowers.append(found.lower(1.96))
    fits_a, errors_a = np.asarray(fits), np.asarray(errors)
    assert math.sqrt(np.mean(errors_a**2)) == pytest.approx(np.std(fits_a), rel=0.15)
    below = np.mean(np.asarray(lowers) <= 400.0)
    assert 0.95 <= below <= 0.995, below


def _dwi_session(
    label: str, adc_um2s: np.ndarray, lesion: np.ndarray, affine: np.ndarray
) -> SessionImages:
    """A session with only what the DWI change's reach needs: ADC, its DWI lesion, brain, NAWM
    and the band's cuts, on one 2 x 2 x 5 mm grid in the baseline world."""
    adc = MRImage(adc_um2s.astype(np.float32), affine)
    mask = adc.with_data(lesion.astype(np.uint8), sequence="OTHER")
    images = SessionImages(label, date(2026, 1, 1), None, None, adc=adc)
    images.dwi_result = LesionMap(lesion_mask=mask)
    images.dwi_brain = adc.with_data(np.ones(lesion.shape, np.uint8), sequence="OTHER")
    images.dwi_nawm_mask = adc.with_data((~lesion).astype(np.uint8), sequence="OTHER")
    images.bands["dwi"] = (mask, mask)
    return images


def test_a_dwi_change_reaches_over_a_lesion_the_later_scan_missed_but_still_reads() -> None:
    """Session 1 found a restricted lesion (rADC 0.5, 8 voxels of 2 x 2 x 5 mm = 0.16 mL). Session 2
    holds the same tissue at 60 % of each voxel (rADC 0.7: above the engine's cut, not found);
    session 3's ADC there is normal again (resolved). Only session 2's reading reaches the
    change's interval, by about the restricted tissue it holds; session 3 adds nothing."""
    shape, affine = (30, 24, 9), np.diag([2.0, 2.0, 5.0, 1.0])
    rng = np.random.default_rng(7)
    normal = 750.0
    site = np.zeros(shape, bool)
    site[10:12, 8:10, 4:6] = True

    def adc_with(lesion_radc: float) -> np.ndarray:
        adc = normal * (1.0 + rng.normal(0.0, 0.04, shape))
        adc[site] = normal * lesion_radc * (1.0 + rng.normal(0.0, 0.04, int(site.sum())))
        return adc

    none = np.zeros(shape, bool)
    first = _dwi_session("ses-01", adc_with(0.5), site, affine)
    missed = _dwi_session("ses-02", adc_with(0.7), none, affine)
    resolved = _dwi_session("ses-03", adc_with(1.0), none, affine)
    in_before, in_after = _dwi_unseen(first, missed)
    assert in_before == 0.0  # session 2 found nothing for session 1 to read
    # 60 % of the site's 0.16 mL is restricted tissue of the lesion's own deficit
    assert in_after == pytest.approx(0.6 * 0.16, rel=0.2), in_after
    assert _dwi_unseen(first, resolved) == (0.0, 0.0)
    # a lesion both sessions found is the band's, not a missed one
    assert _dwi_unseen(first, _dwi_session("ses-04", adc_with(0.5), site, affine)) == (0.0, 0.0)


def test_the_flair_lesion_radc_change_reaches_over_its_reading_on_either_footprint() -> None:
    """The same lesion tissue (rADC 0.6) in two sessions; the first session's FLAIR lesion also
    takes in a rim of normal tissue, the second's does not. Each reading on its own footprint
    gives a false fall of rADC; read on either footprint in both sessions the change is 0, so the
    change reaches up to 0 and no further down."""
    shape, affine = (24, 20, 10), np.diag([2.0, 2.0, 4.0, 1.0])
    rng = np.random.default_rng(11)
    normal = 750.0
    site = np.zeros(shape, bool)
    site[8:12, 8:12, 4:6] = True
    rim = ndi.binary_dilation(site, iterations=1) & ~site

    def session(label: str, flair_lesion: np.ndarray) -> SessionImages:
        adc = normal * (1.0 + rng.normal(0.0, 0.01, shape))
        adc[site] *= 0.6
        images = _dwi_session(label, adc, np.zeros(shape, bool), affine)
        nawm = (~(site | rim)).astype(np.uint8)
        images.dwi_nawm_mask = MRImage(nawm, affine)
        images.flair = MRImage(np.ones(shape, np.float32), affine)
        images.flair_result = LesionMap(lesion_mask=MRImage(flair_lesion.astype(np.uint8), affine))
        return images

    first, second = session("ses-01", site | rim), session("ses-02", site)
    on_own = []
    for s in (first, second):
        assert s.adc is not None and s.dwi_result is not None and s.flair_result is not None
        lesions = s.flair_result.lesion_mask
        row = dwi_measures(s.adc, s.dwi_result.lesion_mask, 750.0, lesions, np.eye(4))
        on_own.append(row["flair_lesion_radc"])
    change = on_own[1] - on_own[0]
    assert change < -0.1  # the rim of normal tissue in the first reading
    down, up = _change_reach("flair_lesion_radc", change, first, second)
    assert down == 0.0
    assert up == pytest.approx(-change, abs=0.02)
    # nothing to reach over when both sessions draw the same lesion
    same = session("ses-03", site)
    assert _change_reach("flair_lesion_radc", 0.0, second, same) == pytest.approx((0, 0), abs=0.01)


def test_a_small_flair_load_gets_a_session_band_down_to_its_tissues_own_adc() -> None:
    """FLAIR lesions of 2 x 2 x 3 mm fill 60 % of their 2 x 2 x 5 mm ADC voxels: the reading
    (voxels at least half filled) is a mix, rADC about 0.7 for tissue of rADC 0.5, and no ADC
    voxel is filled to 0.7, so the band's inner cut reads nothing. The session's band still runs
    from the lower end of the two-tissue fit of the lesion's own ADC (under 0.5 plus its error)
    up to the 0.3 cut's reading; the changes keep no band (the cuts')."""
    from followup.analyze import _spread

    shape, affine = (24, 20, 8), np.diag([2.0, 2.0, 5.0, 1.0])
    fine_shape, fine_affine = (48, 40, 40), np.diag([1.0, 1.0, 1.0, 1.0])
    for matrix in (affine, fine_affine):
        matrix[:3, 3] = (0.5 * matrix[0, 0], 0.5 * matrix[1, 1], 0.5 * matrix[2, 2])
    rng = np.random.default_rng(11)
    flair = np.zeros(fine_shape, bool)
    filled = np.zeros(shape)
    for i, j, k in [(4, 4, 2), (8, 6, 3), (12, 10, 4), (16, 6, 5), (6, 14, 3), (18, 14, 4)]:
        flair[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 5 * k + 1 : 5 * k + 4] = True
        filled[i, j, k] = 0.6
    normal = 750.0
    adc = normal * (1.0 - filled * 0.5) * (1.0 + rng.normal(0.0, 0.02, shape))
    adc_image = MRImage(adc.astype(np.float32), affine)
    flair_mask = MRImage(flair.astype(np.uint8), fine_affine, sequence="OTHER")
    none = adc_image.with_data(np.zeros(shape, np.uint8), sequence="OTHER")
    images = SessionImages("ses-01", date(2026, 1, 1), None, None, adc=adc_image)
    images.flair_result = LesionMap(lesion_mask=flair_mask)
    images.dwi_result = LesionMap(lesion_mask=none)
    images.dwi_nawm_mask = adc_image.with_data((filled == 0).astype(np.uint8), sequence="OTHER")
    images.bands = {"flair": (flair_mask, flair_mask), "dwi": (none, none)}
    draw = Draw(flair_mask, none, adc_image, normal, np.eye(4), np.eye(4), np.eye(4))
    images.draws = [draw, draw]
    spread = _spread(images, UncertaintyParams())
    assert spread is not None
    reading = dwi_measures(adc_image, none, normal, flair_mask, np.eye(4))["flair_lesion_radc"]
    assert reading == pytest.approx(0.7, abs=0.03)
    low, high = spread.session_bands["flair_lesion_radc"]
    assert 0.3 < low < 0.5 and high == pytest.approx(reading, abs=0.01)
    assert "flair_lesion_radc" not in spread.bands  # no inner cut, no band for the changes
