"""Validate the DWI front end and lesion method on real scans nobody here made, in one run.

Cases (from ``../shared/realdata`` or ``$LEUKOTRACK_REALDATA``; built as temporary case folders, never
copied into the repository):

* ``ads_dwi/Subject01``: acute territorial infarct, b=0 + trace (b = 1000), no ADC (computed); also
  run as the trace alone.
* ``ads_dwi/Subject02``: small pontine infarct, b=0 + trace + scanner ADC (mm2/s); also as trace +
  ADC without b=0, and as the trace alone.
* ``siemens_xa30`` classic and enhanced: trace at b = 2500 + scanner ADC of a water phantom (no lesion
  expected; water ADC about 2000 um2/s at room temperature).
* ``ge_mr29_dwi``: a 2-slice DWI (expected: ``SeriesTooSmallError``).

For each case: the input kind, brain and DWI lesion volume (mL), lesion count, NAWM ADC and lesion
rADC, and the CPU seconds of :func:`imaging.pipeline.process_case`. The published model's outputs that
come with the ADS examples (Liu et al., Commun Med 2021) are quoted for reference: 203.7 mL (Subject01)
and 0.35 mL (Subject02, pons), both measured in their MNI space. With ``--pictures DIR`` a montage of
each ADS case (trace, brain mask in yellow, lesions in red, the visible-lesion variant
``radc_rim_max=0.9`` dashed orange, volumes in the title) is saved as PNG.

Usage: ``python benchmarks/validate_dwi.py [--pictures docs/validation] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.case import scan_case  # noqa: E402
from imaging.errors import ImagingError  # noqa: E402
from imaging.image import MRImage  # noqa: E402
from imaging.nifti import open_nifti  # noqa: E402
from imaging.pipeline import SessionImages, process_case  # noqa: E402
from imaging.segment import DwiLesionParams, segment_dwi_lesions  # noqa: E402
from imaging.units import mm3_to_ml  # noqa: E402

ADS_REFERENCE_ML = {"Subject01": 203.7, "Subject02": 0.35}


def realdata_root() -> Path:
    configured = os.environ.get("LEUKOTRACK_REALDATA")
    return Path(configured) if configured else REPO.parent / "shared" / "realdata"


def _save(data: np.ndarray, affine: np.ndarray, path: Path, bvals: list[float] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)
    if bvals is not None:
        Path(str(path).replace(".nii.gz", ".bval")).write_text(" ".join(f"{b:g}" for b in bvals))


def ads_case(realdata: Path, subject: str, root: Path, *, b0: bool, adc: bool) -> Path:
    """A one-session NIfTI case from an ADS example (b=0 and trace stacked into one 4-D DWI)."""
    folder = realdata / "ads_dwi" / subject
    trace = open_nifti(folder / f"{subject}_DWI.nii.gz")
    data, bvals = np.asarray(trace.dataobj, np.float32), [1000.0]
    if b0:
        s0 = np.asarray(open_nifti(folder / f"{subject}_b0.nii.gz").dataobj, np.float32)
        data, bvals = np.stack([s0, data], axis=-1), [0.0, 1000.0]
    root.mkdir(parents=True)
    (root / "sessions.tsv").write_text("session_id\tacq_time\nses-01\t2020-01-01\n")
    _save(data, trace.affine, root / "ses-01" / "dwi" / f"sub-{subject}_ses-01_dwi.nii.gz", bvals)
    if adc:
        (root / "ses-01" / "dwi" / f"sub-{subject}_ses-01_ADC.nii.gz").symlink_to(
            folder / f"{subject}_ADC.nii.gz"
        )
    return root


def dicom_case(sources: list[Path], root: Path) -> Path:
    """A case folder of symbolic links to the files of DICOM series folders."""
    for source in sources:
        target = root / source.name
        target.mkdir(parents=True)
        for path in sorted(source.iterdir()):
            (target / path.name).symlink_to(path)
    return root


#: The visible-lesion variant (stroke readers' extent): rim voxels brighter than the grey-matter
#: ceiling with rADC < 0.9 join the lesion.
VISIBLE = DwiLesionParams(radc_rim_max=0.9)


def picture(images: SessionImages, title: str, path: Path, visible: MRImage | None) -> None:
    """Axial montage of the trace with the brain mask (yellow), DWI lesions (red) and the visible-
    lesion variant (orange, dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert images.b1000 is not None and images.dwi_result is not None
    trace = images.b1000.reoriented("RAS")
    lesion = images.dwi_result.lesion_mask.reoriented("RAS").data > 0
    wider = visible.reoriented("RAS").data > 0 if visible is not None else None
    brain = images.dwi_brain.reoriented("RAS").data > 0 if images.dwi_brain is not None else None
    data = np.asarray(trace.data, np.float32)
    k_with_brain = np.flatnonzero(brain.any(axis=(0, 1))) if brain is not None else [0]
    k_lesion = np.flatnonzero(lesion.any(axis=(0, 1)))
    low, high = int(k_with_brain[0]) + 2, int(k_with_brain[-1]) - 2
    picks = np.linspace(low, high, 8).round().astype(int)
    if k_lesion.size:  # make sure the lesion's largest slice is shown
        largest = int(k_lesion[np.argmax(lesion.sum(axis=(0, 1))[k_lesion])])
        picks[np.argmin(np.abs(picks - largest))] = largest
    vmax = float(np.percentile(data[brain] if brain is not None else data, 99.5))
    fig, axes = plt.subplots(2, len(picks) // 2, figsize=(2.3 * len(picks) / 2, 5.0))
    for ax, k in zip(axes.flat, picks, strict=True):
        ax.imshow(data[:, :, k].T, origin="lower", cmap="gray", vmin=0, vmax=vmax)
        if brain is not None and brain[:, :, k].any():
            ax.contour(brain[:, :, k].T, levels=[0.5], colors="yellow", linewidths=0.5)
        if wider is not None and wider[:, :, k].any():
            ax.contour(
                wider[:, :, k].T, levels=[0.5], colors="orange", linewidths=0.6, linestyles="--"
            )
        if lesion[:, :, k].any():
            ax.contour(lesion[:, :, k].T, levels=[0.5], colors="red", linewidths=0.7)
        ax.set_title(f"k={k}", fontsize=7)
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=60)
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency: a 64-colour palette keeps the PNG small

    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=64).save(path, optimize=True)


def measure(name: str, root: Path, pictures: Path | None) -> dict[str, Any]:
    start = time.process_time()
    try:
        case = process_case(scan_case(root))
    except ImagingError as error:
        return {"case": name, "error": f"{type(error).__name__}: {str(error)[:90]}..."}
    seconds = time.process_time() - start
    images = case.sessions[0]
    result = images.dwi_result
    assert images.b1000 is not None and result is not None and images.dwi_brain is not None
    brain_ml = mm3_to_ml(
        float(np.count_nonzero(images.dwi_brain.data)) * images.b1000.voxel_volume_mm3
    )
    row: dict[str, Any] = {
        "case": name,
        "input": images.dwi_kind,
        "b": images.dwi_b_value_s_mm2,
        "brain_ml": brain_ml,
        "lesion_ml": result.volume_ml,
        "n": result.n_lesions,
        "nawm_adc": math.nan,
        "radc": math.nan,
        "cpu_s": seconds,
        "visible_ml": math.nan,
    }
    visible = None
    if images.adc is not None and images.dwi_wm_prior is not None:
        # the built-in method's own NAWM ADC and lesion rADC (same parameters as the pipeline)
        own = segment_dwi_lesions(images.b1000, images.adc, images.dwi_brain, images.dwi_wm_prior)
        row["nawm_adc"], row["radc"] = own.nawm_adc_um2s, own.radc_lesion
        wide = segment_dwi_lesions(
            images.b1000, images.adc, images.dwi_brain, images.dwi_wm_prior, params=VISIBLE
        )
        visible, row["visible_ml"] = wide.lesion_mask, wide.volume_ml
    if pictures is not None and name.startswith("ads"):
        title = (
            f"{name} ({images.dwi_kind}): brain {brain_ml:.0f} mL, DWI lesion "
            f"{result.volume_ml:.2f} mL in {result.n_lesions}"
        )
        picture(images, title, pictures / f"{name}.png", visible)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    realdata = realdata_root()
    if not realdata.is_dir():
        sys.exit(f"real scans not found at {realdata} (set LEUKOTRACK_REALDATA)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cases = [
            ("ads-Subject01-b0+trace", "Subject01", True, False),
            ("ads-Subject01-trace", "Subject01", False, False),
            ("ads-Subject02-b0+trace+adc", "Subject02", True, True),
            ("ads-Subject02-trace+adc", "Subject02", False, True),
            ("ads-Subject02-trace", "Subject02", False, False),
        ]
        for name, subject, b0, adc in cases:
            root = ads_case(realdata, subject, work / name, b0=b0, adc=adc)
            rows.append(measure(name, root, args.pictures))
            print(rows[-1], flush=True)
        xa30 = realdata / "siemens_xa30"
        for pair in ("classic", "enhanced"):
            root = dicom_case([xa30 / f"{pair}_tracew", xa30 / f"{pair}_adc"], work / pair)
            rows.append(measure(f"xa30-{pair}", root, None))
            print(rows[-1], flush=True)
        root = dicom_case([realdata / "ge_mr29_dwi"], work / "ge")
        rows.append(measure("ge-2-slice", root, None))
        print(rows[-1], flush=True)
    lines = [
        "| case | input | b | brain mL | DWI lesion mL | n | NAWM ADC um2/s | lesion rADC | "
        "visible lesion mL (radc_rim_max 0.9) | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['case']} | {row['error']} ||||||||| ")
            continue
        lines.append(
            "| {case} | {input} | {b:g} | {brain_ml:.0f} | {lesion_ml:.2f} | {n} | {nawm_adc:.0f} | "
            "{radc:.2f} | {visible_ml:.2f} | {cpu_s:.1f} |".format(**row)
        )
    lines.append("")
    lines.append(
        "Published model (ADS, Liu et al. 2021) on the same examples, MNI space: Subject01 "
        f"{ADS_REFERENCE_ML['Subject01']} mL, Subject02 {ADS_REFERENCE_ML['Subject02']} mL (pons)."
    )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
