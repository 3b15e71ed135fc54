"""Diffusion scans of the test-retest truths: DWI and ADC for the calibration of issue 16.

A :class:`synthetic.test_retest.RetestTruth` holds one patient's anatomy (grey matter, white
matter and CSF fractions on the 1 mm render grid) and lesion fraction. This module scans the same
truth with a clinical diffusion protocol, in the same session as the FLAIR of
:func:`synthetic.test_retest.render_scan`:

* the DIFFUSION CONTRAST (``dwi_settings(truth_seed)``, drawn once per patient): normal white
  matter ADC 650-800 um2/s (Helenius et al. 2002: 700 +- 30, range 620-790), grey matter 5-25 %
  above it, CSF 2800-3200 um2/s; b = 0 signal of grey matter and CSF relative to white matter; the
  lesions restricted, rADC 0.40-0.65 of normal white matter (toxic leukoencephalopathy: 0.40-0.48
  in the cases of ``exposure-and-biomarkers.md`` section 3.2; each lesion +-10 %) with a b = 0
  signal 10-50 % above white matter (T2 prolongation); an ADC texture of 2-5 %; the protocol
  (2 x 2 mm in-plane, 4 or 5 mm slices, b = 1000 s/mm2), its noise (SD 1.5-4 % of the white-matter
  b = 0 signal, Rician) and what the export holds (``b0+trace+adc`` or ``trace+adc``);
* each SCAN (``scan_seed``): the session's head pose (the FLAIR's) moved by up to 0.5 degree and
  0.5 mm between the two series, the DWI's own slice plan (tilt +-6 degrees about x, +-2 about y
  and z, an offset by a random fraction of a voxel), a new bias field (shared by b = 0 and the
  trace: it cancels in the ADC), new noise and a receiver gain of 0.9-1.1.

Physics. Each render voxel mixes its tissues and its lesion share ``f`` in signal:
``S_b = (1 - f) * sum_t p_t S0_t exp(-b ADC_t) + f * S0_lesion exp(-b ADC_lesion)``. A scan voxel
is the mean of 2 x 2 x ``slice_mm`` samples 1 mm apart (trilinear from the render grid), so the
partial volume of thick slices mixes signals as a scanner does. The scanner's ADC is
``ln(S0 / S_b) / b`` of the noisy magnitudes (um2/s, 0 where the b = 0 signal is below a tenth of
white matter's).

Truth (:func:`true_dwi`). The DWI lesion is restricted lesion tissue, as leukotrack defines it
(``DwiLesionParams.radc_max``; the sample case's truth): the voxels of the 1 mm render grid that
are mostly lesion (``f >= 0.5``, the FLAIR truth) and whose apparent ADC, the one a noiseless 1 mm
scan would give (``ln(S0 / S_b) / b`` of the render voxel's own signals), is below 0.75 of the
true normal white-matter ADC. The true rADC is their mean apparent ADC over the white-matter ADC;
the true FLAIR-lesion rADC the same over every voxel with ``f >= 0.5``. The lesion tissue's own
rADC (without partial volume) is recorded beside them. Per lesion (:func:`lesion_dwi_volume_ml`),
each truth lesion of ``truth.json`` gets the restricted voxels it owns, as its FLAIR truth counts
them (``dwi_volume_ml``, both scans).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from imaging.image import MRImage
from imaging.sequence import SequenceClass
from synthetic.fields import rng_for, smooth_noise
from synthetic.ms_flair import rotation_xyz
from synthetic.test_retest import (
    RetestPair,
    RetestTruth,
    _points,
    _sample,
    changed_fraction,
    lesion_owner,
)

__all__ = [
    "B_VALUE_S_MM2",
    "RADC_RESTRICTED",
    "DwiContrast",
    "DwiScan",
    "add_lesion_dwi_truth",
    "dwi_contrast",
    "dwi_settings",
    "lesion_dwi_volume_ml",
    "render_dwi",
    "true_dwi",
    "write_dwi",
]

#: The diffusion weighting of the trace (s/mm2).
B_VALUE_S_MM2 = 1000.0
#: In-plane voxel of the DWI (render voxels of 1 mm).
IN_PLANE = 2
#: Restricted: apparent ADC below this share of normal white matter's (the DWI engine's definition,
#: ``DwiLesionParams.radc_max``, and the sample case's truth).
RADC_RESTRICTED = 0.75


@dataclass(frozen=True)
class DwiScan:
    """One diffusion series of a scan of a truth.

    Attributes
    ----------
    b0, trace, adc_um2s : MRImage
        b = 0, b = 1000 trace (float32 holding integers) and the scanner's ADC (um2/s), on the DWI
        grid; their affine is the DWI grid in this scan's scanner world.
    settings : dict
        The series' motion, slice plan, bias and gain.
    """

    b0: MRImage
    trace: MRImage
    adc_um2s: MRImage
    settings: dict[str, Any] = field(default_factory=dict)


def dwi_settings(truth_seed: int) -> dict[str, Any]:
    """The diffusion contrast and protocol of a patient (see the module docstring)."""
    rng = rng_for(truth_seed, "test_retest", "dwi")
    return {
        "wm_adc_um2s": float(rng.uniform(650.0, 800.0)),
        "gm_over_wm_adc": float(rng.uniform(1.05, 1.25)),
        "csf_adc_um2s": float(rng.uniform(2800.0, 3200.0)),
        "gm_over_wm_s0": float(rng.uniform(1.1, 1.4)),
        "csf_over_wm_s0": float(rng.uniform(1.8, 3.0)),
        "lesion_radc": float(rng.uniform(0.40, 0.65)),
        "lesion_over_wm_s0": float(rng.uniform(1.1, 1.5)),
        "adc_texture_sd": float(rng.uniform(0.02, 0.05)),
        "noise_sd": float(rng.uniform(0.015, 0.04)),
        "b0_level": float(rng.uniform(300.0, 1500.0)),
        "slice_mm": float(rng.choice([4.0, 5.0])),
        "in_plane_mm": float(IN_PLANE),
        "input_kind": str(rng.choice(["b0+trace+adc", "trace+adc"])),
        "b_value_s_mm2": B_VALUE_S_MM2,
        "truth_seed": int(truth_seed),
    }


@dataclass(frozen=True)
class DwiContrast:
    """A patient's diffusion contrast on the render grid (white matter b = 0 = 1), any lesion share.

    Attributes
    ----------
    s0, sb : ndarray of float32, shape (I, J, K)
        b = 0 and b = 1000 signals of the tissue without lesion.
    lesion_s0 : float
        b = 0 signal of lesion.
    lesion_adc_um2s : ndarray of float32, shape (I, J, K)
        ADC of lesion at each voxel (its lesion's restriction, the texture).
    """

    s0: NDArray[np.float32]
    sb: NDArray[np.float32]
    lesion_s0: float
    lesion_adc_um2s: NDArray[np.float32]


def dwi_contrast(truth: RetestTruth, dwi: dict[str, Any]) -> DwiContrast:
    """The diffusion contrast of ``truth`` with the settings ``dwi`` (see the module docstring)."""
    tissue = truth.tissue_fractions
    wm_adc = float(dwi["wm_adc_um2s"])
    texture = smooth_noise(
        rng_for(int(dwi["truth_seed"]), "test_retest", "dwi_texture"),
        truth.fraction.shape,
        1.5,
        step=1,
    )
    adc_scale = 1.0 + float(dwi["adc_texture_sd"]) * texture
    b = float(dwi["b_value_s_mm2"]) * 1e-6
    parts = (
        ("wm", 1.0, wm_adc),
        ("gm", float(dwi["gm_over_wm_s0"]), wm_adc * float(dwi["gm_over_wm_adc"])),
        ("csf", float(dwi["csf_over_wm_s0"]), float(dwi["csf_adc_um2s"])),
    )
    s0 = np.zeros(truth.fraction.shape, np.float32)
    sb = np.zeros(truth.fraction.shape, np.float32)
    for name, s0_t, adc_t in parts:
        s0 += tissue[name] * np.float32(s0_t)
        adc = adc_scale * np.float32(adc_t) if name != "csf" else np.float32(adc_t)
        sb += tissue[name] * np.float32(s0_t) * np.exp(-b * adc).astype(np.float32)
    # each lesion's own restriction: its FLAIR level's share (0.9-1.1) read the other way round
    base = float(truth.settings["lesion_over_tissue"]) * max(
        1.0, float(truth.settings["gm_over_wm"])
    )
    share = np.clip(truth.lesion_level / np.float32(base), 0.9, 1.1)
    lesion_adc = np.float32(float(dwi["lesion_radc"]) * wm_adc) * (2.0 - share) * adc_scale
    return DwiContrast(s0, sb, float(dwi["lesion_over_wm_s0"]), lesion_adc.astype(np.float32))


def _signals(
    truth: RetestTruth, fraction: NDArray[np.float32], contrast: DwiContrast, b_value_s_mm2: float
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Noiseless b = 0 and b = ``b_value_s_mm2`` signals of lesion ``fraction`` (render grid)."""
    f = fraction.astype(np.float32)
    lesion_s0 = np.float32(contrast.lesion_s0)
    attenuation = np.exp(-b_value_s_mm2 * 1e-6 * contrast.lesion_adc_um2s).astype(np.float32)
    s0_all = (1.0 - f) * contrast.s0 + f * lesion_s0
    sb_all = (1.0 - f) * contrast.sb + f * lesion_s0 * attenuation
    return (
        np.where(truth.brain, s0_all, 0.0).astype(np.float32),
        np.where(truth.brain, sb_all, 0.0).astype(np.float32),
    )


def _apparent_radc(
    truth: RetestTruth, fraction: NDArray[np.float32], dwi: dict[str, Any], contrast: DwiContrast
) -> NDArray[np.float32]:
    """The noiseless apparent ADC over normal white matter's, ``ln(S0 / Sb) / b``, on the truth's
    1 mm grid, shape (I, J, K) (nan outside the brain)."""
    s0, sb = _signals(truth, fraction, contrast, float(dwi["b_value_s_mm2"]))
    b = float(dwi["b_value_s_mm2"]) * 1e-6
    with np.errstate(divide="ignore", invalid="ignore"):
        apparent: NDArray[np.float32] = np.log(s0 / sb) / b / float(dwi["wm_adc_um2s"])
    return apparent


def lesion_dwi_volume_ml(
    truth: RetestTruth,
    fraction: NDArray[np.float32],
    dwi: dict[str, Any],
    *,
    contrast: DwiContrast | None = None,
    owner: NDArray[np.int64] | None = None,
) -> list[float]:
    """Each truth lesion's restricted volume in one scan, mL, by lesion number (1, 2, ...).

    The restricted voxels of :func:`true_dwi` (1 mm voxels with ``fraction >= 0.5`` whose apparent
    ADC is below ``RADC_RESTRICTED`` times white matter's), each counted for the lesion that owns
    it (:func:`synthetic.test_retest.lesion_owner`, as the FLAIR per-lesion truth counts them;
    ``owner`` when the caller has it already: it costs a distance map of the whole grid).
    """
    if owner is None:
        _, owner = lesion_owner(truth)
    n = int(owner.max())
    lesion = (fraction >= 0.5) & (owner > 0)
    if n == 0 or not lesion.any():
        return [0.0] * n
    contrast = contrast or dwi_contrast(truth, dwi)
    restricted = np.zeros(fraction.shape, bool)
    restricted[lesion] = _apparent_radc(truth, fraction, dwi, contrast)[lesion] < RADC_RESTRICTED
    counts = np.bincount(owner[restricted], minlength=n + 1)[1:]
    return [float(c) * truth.voxel_ml for c in counts]


def true_dwi(
    truth: RetestTruth,
    fraction: NDArray[np.float32],
    dwi: dict[str, Any],
    *,
    contrast: DwiContrast | None = None,
) -> dict[str, float]:
    """The diffusion truth of one scan's lesion ``fraction`` (see the module docstring).

    ``contrast`` is :func:`dwi_contrast` of ``truth`` and ``dwi`` when already computed.

    Returns
    -------
    dict
        ``volume_ml``: the restricted lesion volume (1 mm voxels with ``fraction >= 0.5`` whose
        apparent ADC is below ``RADC_RESTRICTED`` times normal white matter's); ``radc``: their
        mean apparent ADC over the white-matter ADC; ``flair_radc``: the same over every voxel
        with ``fraction >= 0.5`` (the FLAIR lesion); ``lesion_tissue_radc``: the pure lesion
        ADC's mean over those voxels. rADC values are nan without lesion.
    """
    lesion = fraction >= 0.5
    voxel_ml = truth.voxel_ml
    if not lesion.any():
        nan = float("nan")
        return {"volume_ml": 0.0, "radc": nan, "flair_radc": nan, "lesion_tissue_radc": nan}
    contrast = contrast or dwi_contrast(truth, dwi)
    apparent = _apparent_radc(truth, fraction, dwi, contrast)[lesion]
    restricted = apparent < RADC_RESTRICTED
    own = contrast.lesion_adc_um2s[lesion] / float(dwi["wm_adc_um2s"])
    return {
        "volume_ml": float(np.count_nonzero(restricted)) * voxel_ml,
        "radc": float(apparent[restricted].mean()) if restricted.any() else float("nan"),
        "flair_radc": float(apparent.mean()),
        "lesion_tissue_radc": float(own.mean()),
    }


def render_dwi(
    truth: RetestTruth,
    fraction: NDArray[np.float32],
    dwi: dict[str, Any],
    *,
    scan_seed: int,
    head_pose: NDArray[np.float64],
    contrast: DwiContrast | None = None,
) -> DwiScan:
    """Scan ``truth`` with lesion ``fraction`` with the diffusion protocol ``dwi`` once.

    Parameters
    ----------
    truth : RetestTruth
    fraction : ndarray of float32, shape (I, J, K)
        The lesion fraction of this scan (render grid).
    dwi : dict
        :func:`dwi_settings` of the patient.
    scan_seed : int
        The scan's seed (the FLAIR's: the DWI draws its own streams from it).
    head_pose : ndarray, shape (4, 4)
        The session's head pose (patient world -> scanner world), the FLAIR's.
    contrast : DwiContrast, optional
        :func:`dwi_contrast` of ``truth`` and ``dwi`` when already computed.

    Returns
    -------
    DwiScan
    """
    shape = truth.fraction.shape
    prng = rng_for(scan_seed, "test_retest", "dwi_plan")
    motion = np.eye(4)
    motion[:3, :3] = rotation_xyz(np.deg2rad(prng.uniform(-0.5, 0.5, 3)))
    motion[:3, 3] = prng.uniform(-0.5, 0.5, 3)
    pose = motion @ head_pose
    tilt_deg = np.array([prng.uniform(-6, 6), prng.uniform(-2, 2), prng.uniform(-2, 2)])
    offset_vox = prng.uniform(-0.5, 0.5, 3)
    gain = float(prng.uniform(0.9, 1.1))
    bias_sd = float(prng.uniform(0.0, 0.05))
    factors = np.array([IN_PLANE, IN_PLANE, round(float(dwi["slice_mm"]))])
    n = np.ceil(np.array(shape) / factors).astype(int)
    direction = rotation_xyz(np.deg2rad(tilt_deg)) @ truth.grid_affine[:3, :3] @ np.diag(factors)
    centre = pose @ truth.grid_affine @ np.array([*((np.array(shape) - 1) / 2.0), 1.0])
    affine = np.eye(4)
    affine[:3, :3] = direction
    affine[:3, 3] = centre[:3] - direction @ ((n - 1) / 2.0 + offset_vox)
    to_render = np.linalg.inv(truth.grid_affine) @ np.linalg.inv(pose) @ affine
    contrast = contrast or dwi_contrast(truth, dwi)
    s0, sb = _signals(truth, fraction, contrast, float(dwi["b_value_s_mm2"]))
    bias = np.exp(
        bias_sd * smooth_noise(rng_for(scan_seed, "test_retest", "dwi_bias"), shape, 40.0, 4)
    )
    s0 *= bias
    sb *= bias
    brain_f = truth.brain.astype(np.float32)
    shape_scan = (int(n[0]), int(n[1]), int(n[2]))
    acquired = [np.zeros(shape_scan, np.float32) for _ in range(3)]
    subs = [
        ((a + 0.5) / factors[0] - 0.5, (c + 0.5) / factors[1] - 0.5, (s + 0.5) / factors[2] - 0.5)
        for a in range(int(factors[0]))
        for c in range(int(factors[1]))
        for s in range(int(factors[2]))
    ]
    for k0 in range(0, shape_scan[2], 4):
        k1 = min(k0 + 4, shape_scan[2])
        ijk = np.mgrid[0 : shape_scan[0], 0 : shape_scan[1], k0:k1].astype(np.float32)
        for sub in subs:
            points = _points(to_render, ijk + np.array(sub, np.float32)[:, None, None, None])
            for out, volume in zip(acquired, (s0, sb, brain_f), strict=True):
                out[:, :, k0:k1] += _sample(volume, points)
    s0_acq, sb_acq, brain_acq = (a / len(subs) for a in acquired)
    inside = brain_acq >= 0.5
    nrng = rng_for(scan_seed, "test_retest", "dwi_noise")
    sigma = float(dwi["noise_sd"])

    def magnitude(signal: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        real = signal + nrng.normal(0.0, sigma, shape_scan).astype(np.float32)
        imag = nrng.normal(0.0, sigma, shape_scan).astype(np.float32)
        return np.sqrt(real * real + imag * imag).astype(np.float32)

    level = float(dwi["b0_level"]) * gain
    b0 = np.where(inside, magnitude(s0_acq), 0.0) * level
    trace = np.where(inside, magnitude(sb_acq), 0.0) * level
    b0 = np.round(b0).astype(np.float32)
    trace = np.round(trace).astype(np.float32)
    valid = inside & (b0 >= 0.1 * level) & (trace > 0)
    adc = np.zeros(shape_scan, np.float32)
    adc[valid] = np.log(b0[valid] / trace[valid]) / (float(dwi["b_value_s_mm2"]) * 1e-6)
    adc = np.round(np.clip(adc, 0.0, 4000.0)).astype(np.float32)
    settings = {
        "dwi_affine": affine.tolist(),
        "series_motion": motion.tolist(),
        "grid_tilt_deg": tilt_deg.tolist(),
        "grid_offset_vox": offset_vox.tolist(),
        "gain": gain,
        "bias_sd": bias_sd,
    }
    bvals = (0.0, float(dwi["b_value_s_mm2"]))
    return DwiScan(
        b0=MRImage(b0, affine, sequence=SequenceClass.DWI, bvals_s_mm2=(bvals[0],)),
        trace=MRImage(trace, affine, sequence=SequenceClass.DWI, bvals_s_mm2=(bvals[1],)),
        adc_um2s=MRImage(adc, affine, sequence=SequenceClass.ADC),
        settings=settings,
    )


def write_dwi(
    pair: RetestPair, case_dir: Path, *, truth_seed: int, input_kind: str | None = None
) -> dict[str, Any]:
    """Scan ``pair``'s two sessions with the diffusion protocol and write them into ``case_dir``.

    ``case_dir/ses-0N/dwi/sub-<name>_ses-0N_dwi.nii.gz`` (b = 0 and trace, 4-D, or the trace alone,
    as the patient's ``input_kind`` says) with its ``.bval``, and ``..._ADC.nii.gz`` (int16, sform =
    qform = the DWI grid). ``truth.json`` (written by :func:`synthetic.test_retest.write_pair`) gets
    a ``"dwi"`` entry: the settings, each scan's series settings and its truth (:func:`true_dwi`:
    ``volume_ml``, ``radc``, ``flair_radc``, ``lesion_tissue_radc``, one value per scan), and each
    of its lesions its restricted volume (``dwi_volume_ml``, :func:`add_lesion_dwi_truth`).

    ``input_kind`` (``"b0+trace+adc"`` or ``"trace+adc"``) overrides the drawn one.

    Returns
    -------
    dict
        The ``"dwi"`` entry.
    """
    dwi = dwi_settings(truth_seed)
    if input_kind is not None:
        if input_kind not in ("b0+trace+adc", "trace+adc"):
            raise ValueError(
                f"input_kind must be 'b0+trace+adc' or 'trace+adc', not {input_kind!r}"
            )
        dwi["input_kind"] = input_kind
    fraction2, _ = changed_fraction(pair.truth, pair.change)
    fractions = (pair.truth.fraction, fraction2)
    contrast = dwi_contrast(pair.truth, dwi)  # once for both scans and their truth
    name = case_dir.name
    keys = ("volume_ml", "radc", "flair_radc", "lesion_tissue_radc")
    entry: dict[str, Any] = {**dwi, "scans": [], **{key: [] for key in keys}}
    for i, (scan, fraction) in enumerate(zip(pair.scans, fractions, strict=True)):
        session = f"ses-0{i + 1}"
        series = render_dwi(
            pair.truth,
            fraction,
            dwi,
            scan_seed=pair.scan_seeds[i],
            head_pose=scan.head_pose,
            contrast=contrast,
        )
        folder = case_dir / session / "dwi"
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"sub-{name}_{session}"
        if dwi["input_kind"] == "b0+trace+adc":
            data = np.stack([series.b0.data, series.trace.data], axis=-1)
            bval = f"0 {dwi['b_value_s_mm2']:g}\n"
        else:
            data = np.asarray(series.trace.data)
            bval = f"{dwi['b_value_s_mm2']:g}\n"
        for path, volume in (
            (f"{stem}_dwi.nii.gz", data),
            (f"{stem}_ADC.nii.gz", series.adc_um2s.data),
        ):
            image = nib.Nifti1Image(np.asarray(volume).astype(np.int16), series.trace.affine)
            image.header.set_xyzt_units("mm", "sec")
            image.set_sform(series.trace.affine, code=1)
            image.set_qform(series.trace.affine, code=1)
            nib.save(image, path)
        Path(f"{stem}_dwi.bval").write_text(bval)
        entry["scans"].append({"session_id": session, **series.settings})
        for key, value in true_dwi(pair.truth, fraction, dwi, contrast=contrast).items():
            entry[key].append(value)
    truth_path = case_dir / "truth.json"
    record = json.loads(truth_path.read_text())
    record["dwi"] = entry
    add_lesion_dwi_truth(record, pair.truth, fractions, dwi, contrast=contrast)
    truth_path.write_text(json.dumps(record, indent=1) + "\n")
    return entry


def add_lesion_dwi_truth(
    record: dict[str, Any],
    truth: RetestTruth,
    fractions: tuple[NDArray[np.float32], NDArray[np.float32]],
    dwi: dict[str, Any],
    *,
    contrast: DwiContrast | None = None,
    owner: NDArray[np.int64] | None = None,
) -> None:
    """Give each lesion of a ``truth.json`` record its restricted volume in both scans:
    ``dwi_volume_ml`` [scan 1, scan 2] (:func:`lesion_dwi_volume_ml`; ``owner`` as there), in
    place."""
    contrast = contrast or dwi_contrast(truth, dwi)
    if owner is None:
        _, owner = lesion_owner(truth)
    volumes = [
        lesion_dwi_volume_ml(truth, f, dwi, contrast=contrast, owner=owner) for f in fractions
    ]
    if len(volumes[0]) != len(record["lesions"]):
        raise ValueError(
            f"{len(record['lesions'])} lesions in the record, {len(volumes[0])} in the truth"
        )
    for lesion in record["lesions"]:
        k = int(lesion["lesion"]) - 1
        lesion["dwi_volume_ml"] = [volumes[0][k], volumes[1][k]]
