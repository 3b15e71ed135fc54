"""Generate one synthetic case folder: a PACS-style DICOM export plus its ground truth."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from synthetic import acquisition as acq
from synthetic.anatomy import Anatomy, build_anatomy
from synthetic.bookkeeping import grid_json, lesion_events, session_truth, write_session_niftis
from synthetic.dicom_enhanced import enhanced_dataset
from synthetic.dicom_writer import (
    Patient,
    Series,
    Study,
    classic_datasets,
    make_uid,
    set_transfer_syntax,
)
from synthetic.export import ExportSeries, write_export
from synthetic.fields import rng_for
from synthetic.lesions import (
    INDEX_COMPONENTS,
    LesionState,
    build_component_fields,
    empty_state,
    jittered_components,
    lesion_state,
)
from synthetic.mr_physics import session_signals, static_signals
from synthetic.presentation_state import gsps_dataset
from synthetic.sessions import SessionPlan, plan_grids, plan_sessions
from synthetic.truth import NIFTI_CONVENTION, TRUTH_DEFINITIONS, write_json
from synthetic.vendors import SCANNERS, protocol

GENERATOR_VERSION = "1.0.0"
#: Seed of the index case (its lesion course is exactly the designed one; other seeds vary it).
DEFAULT_SEED = 20230314
DEFAULT_DAYS = (0, 3, 8, 45, 165)


def _series_time(study_time: str, minutes: float) -> str:
    total = (
        int(study_time[:2]) * 3600
        + int(study_time[2:4]) * 60
        + float(study_time[4:])
        + minutes * 60.0
    )
    hours, rem = divmod(total, 3600.0)
    mins, secs = divmod(rem, 60.0)
    return f"{int(hours) % 24:02d}{int(mins):02d}{secs:09.6f}"


class _Simulator:
    """Holds the anatomy and lesion fields of one case while its sessions are simulated."""

    def __init__(self, seed: int, lesions: bool) -> None:
        self.seed = seed
        self.anatomy: Anatomy = build_anatomy(rng_for(seed, "anatomy"))
        self.static = static_signals(self.anatomy)
        specs = jittered_components(seed, vary=seed != DEFAULT_SEED)
        self.specs = specs if lesions else ()
        self.fields = build_component_fields(self.anatomy, self.specs, seed) if lesions else []

    def state(self, day: float) -> LesionState:
        if not self.fields:
            return empty_state(self.anatomy, day)
        return lesion_state(self.anatomy, self.fields, day)


def _simulate_session(sim: _Simulator, plan: SessionPlan, state: LesionState) -> dict[str, Any]:
    """Simulate all series of one session; returns pixels, grids and truth arrays."""
    anat = sim.anatomy
    rng = rng_for(sim.seed, "noise", plan.index)
    grids = plan_grids(plan)
    signals = session_signals(sim.static, anat, state)
    fgrid, dgrid = grids["flair"][0], grids["dwi"][0]
    f_sig, f_les, f_brain = acq.sample_grid(
        [signals["flair"], state.flair, anat.brain_mask],
        anat.affine,
        fgrid,
        plan.pose_flair,
        acq.FLAIR_ACQ,
    )
    flair = acq.acquire(f_sig, acq.bias_field(rng, fgrid, 0.13), acq.FLAIR_ACQ, rng)
    b0_sig, b1_sig, d_les, d_brain = acq.sample_grid(
        [signals["b0"], signals["b1000"], state.restricted, anat.brain_mask],
        anat.affine,
        dgrid,
        plan.pose_dwi,
        acq.DWI_B0_ACQ,
    )
    d_bias = acq.bias_field(rng, dgrid, 0.12)
    b0 = acq.acquire(b0_sig, d_bias, acq.DWI_B0_ACQ, rng)
    b1000 = acq.acquire(b1_sig, d_bias, acq.DWI_B1000_ACQ, rng)
    adc = acq.scanner_adc(b0, b1000)
    loc = []
    for g in grids["localizer"]:
        (sig,) = acq.sample_grid(
            [sim.static["localizer"]], anat.affine, g, plan.pose_flair, acq.LOCALIZER_ACQ
        )
        loc.append(acq.acquire(sig, acq.bias_field(rng, g, 0.2), acq.LOCALIZER_ACQ, rng))
    return {
        "grids": grids,
        "flair": flair,
        "dwi": np.stack([b0, b1000], axis=-1),
        "adc": adc,
        "localizer": loc,
        "flair_lesion": (f_les >= 0.5).astype(np.uint8),
        "dwi_lesion": (d_les >= 0.5).astype(np.uint8),
        "brain_flair": (f_brain >= 0.5).astype(np.uint8),
        "brain_dwi": (d_brain >= 0.5).astype(np.uint8),
        "stored_dtype": np.int16 if plan.vendor == "ge" else np.uint16,
    }


def _build_series(
    seed: int, case_id: str, plan: SessionPlan, study: Study, sim_out: dict[str, Any]
) -> dict[str, Series]:
    vendor = plan.vendor
    ge = vendor == "ge"
    out: dict[str, Series] = {}
    timing = {"localizer": 0.6, "flair": 3.2, "dwi": 8.5, "adc": 8.6}
    for kind in ("localizer", "flair", "dwi", "adc"):
        proto = protocol(vendor, kind)
        uid = make_uid(seed, case_id, "series", plan.index, kind)
        pix = sim_out[kind] if kind != "localizer" else sim_out["localizer"]
        pixels = pix if isinstance(pix, list) else [pix]
        grids = sim_out["grids"]["dwi" if kind == "adc" else kind]
        s = Series(
            kind=kind,
            protocol=proto,
            grids=grids,
            pixels=[p.astype(np.int16) if ge else p for p in pixels],
            series_uid=uid,
            series_time=_series_time(study.study_time, timing[kind]),
            dtype="int16" if ge else "uint16",
            bits_stored=16 if ge else 12,
        )
        if kind == "dwi":
            s.b_values = [0.0, 1000.0]
            s.b_value_tags = plan.b_value_tags
            for v, b in enumerate(s.b_values):
                hi = float(np.percentile(pixels[0][..., v], 99.5))
                s.window_by_b[b] = (round(hi * 0.5), round(hi))
            s.window = s.window_by_b[1000.0]
            s.descending = ge
            s.slice_major = ge
        elif kind == "adc":
            s.window = (1100.0, 2400.0)
            if ge:
                s.rescale = (0.001, 0.0)
                s.window = (1.1, 2.4)
            elif vendor == "siemens":
                s.rescale = (1.0, 0.0)
            s.descending = ge
        elif kind == "flair":
            hi = float(np.percentile(pixels[0], 99.5))
            s.window = (round(hi * 0.5), round(hi))
            s.descending = ge
        else:
            s.window = (400.0, 900.0)
        out[kind] = s
    return out


def make_case(
    out_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    lesions: bool = True,
    case_id: str = "indexcase",
    days: tuple[int, ...] = DEFAULT_DAYS,
    references: bool = False,
) -> Path:
    """Write one synthetic case folder (``DICOM/`` export plus ``truth/``).

    Parameters
    ----------
    out_dir : pathlib.Path
        Case folder to create (e.g. ``sample_scans/indexcase``); its ``DICOM`` and ``truth``
        subfolders are replaced.
    seed : int, optional
        Seed of everything random (poses, noise, lesion shapes, UIDs). The default seed gives
        the index case with its designed lesion course; other seeds also vary lesion positions,
        sizes and volumes (a plausible different patient with the same disease).
    lesions : bool, optional
        False gives a lesion-free control (same anatomy model).
    case_id : str, optional
        Case identifier (folder name, PatientName suffix, UID entropy).
    days : tuple of int, optional
        Session days after day 0 (2023-03-14).
    references : bool, optional
        Also write the exact pixel arrays of every FLAIR, DWI and ADC series as NIfTI
        (``truth/ses-*/{flair,dwi,adc}_reference.nii.gz``, about 2.5 MB per session), as needed by
        :mod:`synthetic.render` and :mod:`synthetic.verify`. Off for the bundled sample, whose
        loader exactness is checked against dcm2niix instead.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out_dir = Path(out_dir).resolve()
    sim = _Simulator(seed, lesions)
    plans = plan_sessions(seed, tuple(days))
    demo = case_id == "indexcase"
    patient = Patient(
        name=f"DEMO^{case_id.upper()}",
        patient_id="LTDEMO0001" if demo else f"LT{make_uid(seed, case_id, 'pid')[-8:]}",
        birth_date=date(1961, 8, 22),
    )
    truth_dir = out_dir / "truth"
    if truth_dir.exists():
        shutil.rmtree(truth_dir)
    export: list[ExportSeries] = []
    sessions_json = []
    previous_groups: list[list[str]] | None = None
    events: list[dict[str, Any]] = []
    for plan in plans:
        state = sim.state(float(plan.day))
        sim_out = _simulate_session(sim, plan, state)
        study = Study(
            seed=seed,
            case_id=case_id,
            index=plan.index,
            vendor=plan.vendor,
            patient=patient,
            study_date=plan.study_date,
            study_time=plan.study_time,
            study_uid=make_uid(seed, case_id, "study", plan.index),
            frame_of_reference_uid=make_uid(seed, case_id, "for", plan.index),
            accession=f"A{plan.study_date:%y%m%d}{plan.index + 1:03d}",
            study_id=str(plan.index + 1),
        )
        series = _build_series(seed, case_id, plan, study, sim_out)
        series_json: dict[str, dict[str, Any]] = {}
        written: dict[str, list] = {}
        for kind, s in series.items():
            if plan.vendor == "siemens_xa":
                datasets = [enhanced_dataset(study, s)]
            else:
                datasets = classic_datasets(study, s)
            for ds in datasets:
                set_transfer_syntax(ds, plan.transfer_syntax[kind])
            written[kind] = datasets
            export.append(
                ExportSeries(study.study_uid, s.series_uid, datasets, gzip=kind in plan.gzip_kinds)
            )
            series_json[kind] = {
                "series_instance_uid": s.series_uid,
                "series_number": s.protocol.number,
                "series_description": s.protocol.description,
                "sop_class_uid": str(datasets[0].SOPClassUID),
                "transfer_syntax_uid": str(datasets[0].file_meta.TransferSyntaxUID),
                "n_files": len(datasets),
                "gzip": kind in plan.gzip_kinds,
            }
            if kind == "dwi":
                series_json[kind]["b_values"] = s.b_values
            if kind == "adc":
                series_json[kind]["stored_unit"] = "um2/s (1e-6 mm2/s)"
                series_json[kind]["rescale_slope"] = s.rescale[0] if s.rescale else None
                series_json[kind]["rescaled_unit"] = (
                    "1e-3 mm2/s" if s.rescale and s.rescale[0] != 1.0 else "um2/s (1e-6 mm2/s)"
                )
        if plan.gsps:
            flair_ds = written["flair"]
            gsps_uid = make_uid(seed, case_id, "series", plan.index, "gsps")
            gsps = gsps_dataset(study, flair_ds, gsps_uid, _series_time(plan.study_time, 20))
            export.append(ExportSeries(study.study_uid, gsps_uid, [gsps]))
            series_json["presentation_state"] = {
                "series_instance_uid": gsps_uid,
                "sop_class_uid": str(gsps.SOPClassUID),
                "n_files": 1,
            }

        ses_label = f"ses-{plan.study_date:%Y%m%d}"
        ses_dir = truth_dir / ses_label
        fgrid, dgrid = sim_out["grids"]["flair"][0], sim_out["grids"]["dwi"][0]
        write_session_niftis(
            ses_dir, sim.anatomy, sim.specs, state, sim_out, series["adc"].rescale, references
        )
        truth = session_truth(
            sim.anatomy, sim.specs, plan.pose_flair, plan.pose_dwi, state, sim_out
        )
        groups = [g["components"] for g in truth["connected_groups_flair"]]
        events += lesion_events(plan.day, groups, previous_groups)
        previous_groups = groups
        sessions_json.append(
            {
                "session_id": ses_label,
                "day": plan.day,
                "study_date": f"{plan.study_date:%Y%m%d}",
                "study_time": plan.study_time,
                "study_instance_uid": study.study_uid,
                "frame_of_reference_uid": study.frame_of_reference_uid,
                "vendor_style": plan.vendor,
                "manufacturer": SCANNERS[plan.vendor].manufacturer,
                "quirks": plan.quirks,
                "series": series_json,
                "pose_flair": np.round(plan.pose_flair, 6).tolist(),
                "pose_dwi": np.round(plan.pose_dwi, 6).tolist(),
                "grids": {
                    "flair": grid_json(fgrid),
                    "dwi": grid_json(dgrid),
                },
                **truth,
                "truth_files": {
                    k: f"truth/{ses_label}/{k}.nii.gz"
                    for k in (
                        "flair_lesion",
                        "dwi_lesion",
                        "brain_mask_flair",
                        "brain_mask_dwi",
                        "lesion_ids_template",
                        "dwi_lesion_ids_template",
                        *(
                            ("flair_reference", "dwi_reference", "adc_reference")
                            if references
                            else ()
                        ),
                    )
                },
            }
        )

    note = (
        "DemoPACS export (synthetic data, leukotrack sample case).\n"
        f"Patient: {patient.name} ({patient.patient_id}); {len(plans)} studies.\n"
        "Not a real patient. Generated by synthetic.make_case.\n"
    )
    files = write_export(out_dir / "DICOM", export, seed, case_id, note)
    for ses in sessions_json:
        for entry in ses["series"].values():
            entry["files"] = files[entry["series_instance_uid"]].files
    payload = {
        "generator": {"name": "leukotrack synthetic", "version": GENERATOR_VERSION},
        "seed": seed,
        "case_id": case_id,
        "lesions": lesions,
        "patient": {
            "name": patient.name,
            "id": patient.patient_id,
            "birth_date": f"{patient.birth_date:%Y%m%d}",
            "sex": patient.sex,
            "story": (
                "61-year-old woman, POEMS syndrome, daratumumab + lenalidomide + "
                "dexamethasone; toxic leukoencephalopathy (Steinegger et al. 2024)"
                if lesions and seed == DEFAULT_SEED
                else "synthetic variant of the index case (other seed: other poses, noise, "
                "lesion positions, sizes and volumes)"
                if lesions
                else "synthetic lesion-free control (same anatomy model)"
            ),
        },
        "conventions": {
            "template_space": "MNI152 2009a symmetric (nilearn *_tal_nlin_sym_09a_converted), "
            "RAS+ mm",
            "scanner_space": "scanner patient coordinates in RAS+ mm (DICOM LPS with x and y "
            "negated)",
            "pose": "4x4 matrix P with scanner_RAS = P @ [x_mni, y_mni, z_mni, 1]; "
            "pose_flair for the FLAIR and localizer, pose_dwi for DWI and ADC",
            "nifti_axes": NIFTI_CONVENTION,
            "adc_units": "stored ADC integers are um2/s (1e-6 mm2/s); see each session's "
            "series.adc.rescaled_unit for the unit after RescaleSlope",
            "template_id_maps": "lesion_ids_template: label of the dominant component where the "
            "1 mm FLAIR lesion fraction >= 0.5; dwi_lesion_ids_template: same for the "
            "restricted (DWI lesion) fraction; grid = the unpadded MNI 1 mm template grid",
        },
        "definitions": TRUTH_DEFINITIONS,
        "components": [
            {
                "label": s.label,
                "name": s.name,
                "hemisphere": s.hemisphere,
                "region": s.region,
                "centre_mni_mm": list(s.centre_mm),
            }
            for s in (sim.specs or INDEX_COMPONENTS)
        ],
        "label_legend": {str(s.label): s.name for s in (sim.specs or INDEX_COMPONENTS)},
        "events": events,
        "sessions": sessions_json,
    }
    write_json(truth_dir / "truth.json", payload)
    return out_dir
