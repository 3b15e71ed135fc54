"""Truth bookkeeping of a session: volumes, hemispheres, components, ID maps, NIfTI files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthetic.anatomy import Anatomy
from synthetic.geometry import SliceGrid
from synthetic.lesions import ADC_WM, RADC_RESTRICTED, ComponentSpec, LesionState
from synthetic.truth import connected_groups, write_nifti


def _round(x: float, n: int = 4) -> float:
    return float(round(float(x), n))


def _template_x_of_voxels(
    mask: np.ndarray, grid_affine: np.ndarray, pose: np.ndarray
) -> np.ndarray:
    """Template x (mm) of the voxels of a grid mask."""
    idx = np.argwhere(mask).T.astype(float)
    if idx.size == 0:
        return np.zeros(0)
    m = np.linalg.inv(pose) @ grid_affine
    return m[0, :3] @ idx + m[0, 3]


def session_truth(
    anatomy: Anatomy,
    specs: tuple[ComponentSpec, ...],
    pose_flair: np.ndarray,
    pose_dwi: np.ndarray,
    state: LesionState,
    sim_out: dict[str, Any],
) -> dict[str, Any]:
    """Volumes (1 mm model and grid masks) and component bookkeeping of one session.

    Parameters
    ----------
    anatomy : Anatomy
        Head model.
    specs : tuple of ComponentSpec
        Lesion components of the case.
    pose_flair, pose_dwi : numpy.ndarray
        4x4 true head poses (template RAS -> scanner RAS) of the FLAIR and the DWI.
    state : LesionState
        Lesions of the session on the model grid.
    sim_out : dict
        Simulated series and grid masks (see ``synthetic.case``).

    Returns
    -------
    dict
        The ``flair``, ``dwi``, ``components`` and ``connected_groups_flair`` entries of the
        session in ``truth.json``.
    """
    fgrid, dgrid = sim_out["grids"]["flair"][0], sim_out["grids"]["dwi"][0]
    f_aff, d_aff = fgrid.affine_ras(), dgrid.affine_ras()
    f_vox = abs(np.linalg.det(f_aff[:3, :3])) / 1000.0
    d_vox = abs(np.linalg.det(d_aff[:3, :3])) / 1000.0
    anat = anatomy
    x_mm = anat.mm_coordinates(tuple(slice(0, n) for n in anat.shape))[0]  # type: ignore[arg-type]
    left = x_mm < 0

    def split(vol: np.ndarray) -> tuple[float, float]:
        lv = float((vol * left).sum()) / 1000.0
        return lv, float(vol.sum()) / 1000.0 - lv

    fl_l, fl_r = split(state.flair)
    dw_l, dw_r = split(state.restricted)
    fx = _template_x_of_voxels(sim_out["flair_lesion"], f_aff, pose_flair)
    dx = _template_x_of_voxels(sim_out["dwi_lesion"], d_aff, pose_dwi)
    restricted_sum = float(state.restricted.sum())
    adc_mean = (
        float((state.radc * state.restricted).sum()) / restricted_sum * ADC_WM
        if restricted_sum > 0
        else None
    )
    comps = {}
    for spec in specs:
        fv = float(state.flair_by_component.get(spec.name, np.zeros(1)).sum()) / 1000.0
        dv = float(state.restricted_by_component.get(spec.name, np.zeros(1)).sum()) / 1000.0
        comps[spec.name] = {
            "label": spec.label,
            "flair_volume_ml": _round(fv),
            "dwi_volume_ml": _round(dv),
            "present_flair": fv >= 0.05,
            "present_dwi": dv >= 0.05,
        }
    return {
        "flair": {
            "volume_ml_model_1mm": _round(state.flair.sum() / 1000.0),
            "volume_ml_grid": _round(sim_out["flair_lesion"].sum() * f_vox),
            "left_ml_model_1mm": _round(fl_l),
            "right_ml_model_1mm": _round(fl_r),
            "left_ml_grid": _round((fx < 0).sum() * f_vox),
            "right_ml_grid": _round((fx >= 0).sum() * f_vox),
            "voxels_grid": int(sim_out["flair_lesion"].sum()),
        },
        "dwi": {
            "volume_ml_model_1mm": _round(restricted_sum / 1000.0),
            "volume_ml_grid": _round(sim_out["dwi_lesion"].sum() * d_vox),
            "left_ml_model_1mm": _round(dw_l),
            "right_ml_model_1mm": _round(dw_r),
            "left_ml_grid": _round((dx < 0).sum() * d_vox),
            "right_ml_grid": _round((dx >= 0).sum() * d_vox),
            "voxels_grid": int(sim_out["dwi_lesion"].sum()),
            "lesion_tissue_adc_mean_um2s": None if adc_mean is None else _round(adc_mean, 1),
            "pseudonormalised_ml_model_1mm": _round(
                float((state.affected * (state.radc >= RADC_RESTRICTED) * (state.radc < 1.3)).sum())
                / 1000.0
            ),
        },
        "nawm_adc_um2s": ADC_WM,
        "components": comps,
        "connected_groups_flair": connected_groups(
            state.flair, state.flair_by_component, state.boxes
        ),
    }


def id_map(
    anat: Anatomy,
    by_component: dict[str, np.ndarray],
    state: LesionState,
    total: np.ndarray,
    specs: tuple[ComponentSpec, ...],
) -> np.ndarray:
    """Template-space (1 mm MNI grid) label map: component label where ``total >= 0.5``."""
    best = np.zeros(anat.shape, np.float32)
    labels = np.zeros(anat.shape, np.uint8)
    for spec in specs:
        if spec.name not in by_component:
            continue
        box = state.boxes[spec.name]
        frac = by_component[spec.name]
        better = frac > best[box]
        best[box] = np.where(better, frac, best[box])
        labels[box] = np.where(better, spec.label, labels[box])
    labels[total < 0.5] = 0
    return labels[anat.template_slices]


def grid_json(grid: SliceGrid) -> dict[str, Any]:
    """Geometry summary of a grid for ``truth.json``."""
    return {
        "shape_ijk": list(grid.shape),
        "pixel_spacing_mm": list(grid.pixel_spacing),
        "slice_thickness_mm": grid.slice_thickness,
        "spacing_between_slices_mm": _round(grid.spacing_between_slices, 6),
        "image_orientation_patient_lps": grid.iop_lps.tolist(),
        "first_image_position_patient_lps": grid.ipp_lps[0].tolist(),
        "affine_ras": np.round(grid.affine_ras(), 6).tolist(),
    }


def write_session_niftis(
    ses_dir: Path,
    anatomy: Anatomy,
    specs: tuple[ComponentSpec, ...],
    state: LesionState,
    sim_out: dict[str, Any],
    adc_rescale: tuple[float, float] | None,
    references: bool = False,
) -> None:
    """Write the truth NIfTIs of one session (masks, template ID maps, optionally references).

    Parameters
    ----------
    ses_dir : pathlib.Path
        ``truth/ses-<YYYYMMDD>`` folder.
    anatomy : Anatomy
        Head model (template grid and affine for the ID maps).
    specs : tuple of ComponentSpec
        Lesion components.
    state : LesionState
        Lesions of the session.
    sim_out : dict
        Simulated series (stored integers) and grid masks.
    adc_rescale : tuple of float or None
        (slope, intercept) written in the ADC DICOM; a non-identity rescale makes the ADC
        reference float64 ``stored * slope + intercept`` (a float32 NIfTI scl_slope cannot hold
        0.001 exactly).
    references : bool, optional
        Also write the exact series pixel arrays (``*_reference.nii.gz``).
    """
    fgrid, dgrid = sim_out["grids"]["flair"][0], sim_out["grids"]["dwi"][0]
    f_aff, d_aff = fgrid.affine_ras(), dgrid.affine_ras()
    write_nifti(ses_dir / "flair_lesion.nii.gz", sim_out["flair_lesion"], f_aff)
    write_nifti(ses_dir / "dwi_lesion.nii.gz", sim_out["dwi_lesion"], d_aff)
    write_nifti(ses_dir / "brain_mask_flair.nii.gz", sim_out["brain_flair"], f_aff)
    write_nifti(ses_dir / "brain_mask_dwi.nii.gz", sim_out["brain_dwi"], d_aff)
    if references:
        ref_dtype = sim_out["stored_dtype"]
        write_nifti(ses_dir / "flair_reference.nii.gz", sim_out["flair"].astype(ref_dtype), f_aff)
        write_nifti(ses_dir / "dwi_reference.nii.gz", sim_out["dwi"].astype(ref_dtype), d_aff)
        slope, inter = adc_rescale or (1.0, 0.0)
        adc_ref = sim_out["adc"].astype(ref_dtype)
        if (slope, inter) != (1.0, 0.0):
            adc_ref = adc_ref.astype(np.float64) * float(slope) + float(inter)
        write_nifti(ses_dir / "adc_reference.nii.gz", adc_ref, d_aff)
    tpl_aff = anatomy.template_affine
    flair_ids = id_map(anatomy, state.flair_by_component, state, state.flair, specs)
    dwi_ids = id_map(anatomy, state.restricted_by_component, state, state.restricted, specs)
    write_nifti(ses_dir / "lesion_ids_template.nii.gz", flair_ids, tpl_aff)
    write_nifti(ses_dir / "dwi_lesion_ids_template.nii.gz", dwi_ids, tpl_aff)


def lesion_events(
    day: int, groups: list[list[str]], previous: list[list[str]] | None
) -> list[dict[str, Any]]:
    """FLAIR-based 'new' and 'merge' events between two sessions' connected groups."""
    if previous is None:
        return []
    events: list[dict[str, Any]] = []
    for g in groups:
        sources = {tuple(p) for p in previous for n in g if n in p}
        if len(g) > 1 and len(sources) > 1:
            events.append({"day": day, "type": "merge", "source": "flair", "components": g})
    seen = {n for p in previous for n in p}
    for g in groups:
        for n in g:
            if n not in seen:
                events.append({"day": day, "type": "new", "source": "flair", "components": [n]})
    return events
