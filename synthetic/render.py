"""PNG contact sheets of a generated case (for visual review; PIL only, no matplotlib).

Images are shown as a DICOM viewer shows them: axial slices in radiological convention (patient
left on the image right), native acquisition slices, no reorientation. The level through the
parietal centrum semiovale is the native slice nearest to MNI (0, -45, 32) under the session's
true pose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

PANEL = 240


def _to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)


def _panel(
    img: np.ndarray, lo: float, hi: float, aspect: float = 1.0, outline: list | None = None
) -> Image.Image:
    """One grey panel (rows x columns array) with optional coloured mask outlines."""
    grey = _to_uint8(img, lo, hi)
    rgb = np.stack([grey] * 3, axis=-1)
    for mask, colour in outline or []:
        edge = mask & ~ndimage.binary_erosion(mask)
        rgb[edge] = colour
    pil = Image.fromarray(rgb)
    h, w = rgb.shape[:2]
    h_mm = h * aspect
    scale = PANEL / max(h_mm, w)
    return pil.resize(
        (max(1, round(w * scale)), max(1, round(h_mm * scale))), Image.Resampling.BILINEAR
    )


def _slice_for(
    affine: np.ndarray, pose: np.ndarray, point_mni: tuple[float, float, float]
) -> np.ndarray:
    scanner = pose @ np.array([*point_mni, 1.0])
    return np.linalg.inv(affine) @ scanner


def render_case(case_dir: Path, out_dir: Path, overlay: bool = False) -> list[Path]:
    """Write contact sheets for a case.

    Parameters
    ----------
    case_dir : pathlib.Path
        Case folder with ``truth/truth.json`` and the reference NIfTIs.
    out_dir : pathlib.Path
        Folder for the PNG files.
    overlay : bool, optional
        Also write a sheet with the truth lesion masks outlined (red FLAIR, cyan DWI).

    Returns
    -------
    list of pathlib.Path
        Written PNG files.
    """
    truth = json.loads((case_dir / "truth" / "truth.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for with_overlay in (False, True) if overlay else (False,):
        rows = []
        for ses in truth["sessions"]:
            files = {k: case_dir / v for k, v in ses["truth_files"].items()}
            flair_img = cast(nib.Nifti1Image, nib.load(files["flair_reference"]))
            dwi_img = cast(nib.Nifti1Image, nib.load(files["dwi_reference"]))
            adc_img = cast(nib.Nifti1Image, nib.load(files["adc_reference"]))
            flair = flair_img.get_fdata()
            dwi = dwi_img.get_fdata()
            adc = adc_img.get_fdata()
            if ses["series"]["adc"].get("rescaled_unit", "").startswith("1e-3"):
                adc = adc * 1000.0  # display in um2/s
            f_les = cast(nib.Nifti1Image, nib.load(files["flair_lesion"])).get_fdata() > 0
            d_les = cast(nib.Nifti1Image, nib.load(files["dwi_lesion"])).get_fdata() > 0
            pf, pd = np.array(ses["pose_flair"]), np.array(ses["pose_dwi"])
            kf = round(_slice_for(flair_img.affine, pf, (0, -45, 32))[2])
            kd = round(_slice_for(dwi_img.affine, pd, (0, -45, 32))[2])
            k_low = round(_slice_for(flair_img.affine, pf, (0, -10, -22))[2])
            j_cor = round(_slice_for(flair_img.affine, pf, (0, -45, 32))[1])
            brain = flair[flair > 30]
            f_hi = float(np.percentile(brain, 99.7)) if brain.size else 1.0
            b_hi = float(np.percentile(dwi[..., 1], 99.9))
            red, cyan = (255, 40, 40), (0, 230, 255)

            def ol(mask: np.ndarray, colour: tuple, show: bool = with_overlay) -> list | None:
                return [(mask, colour)] if show else None

            panels = [
                _panel(dwi[:, :, kd, 1].T, 0, b_hi, outline=ol(d_les[:, :, kd].T, cyan)),
                _panel(adc[:, :, kd].T, 0, 2000, outline=ol(d_les[:, :, kd].T, cyan)),
                _panel(flair[:, :, kf].T, 0, f_hi, outline=ol(f_les[:, :, kf].T, red)),
                _panel(flair[:, :, k_low].T, 0, f_hi),
                _panel(
                    flair[:, j_cor, ::-1].T,
                    0,
                    f_hi,
                    aspect=ses["grids"]["flair"]["spacing_between_slices_mm"]
                    / ses["grids"]["flair"]["pixel_spacing_mm"][0],
                    outline=ol(f_les[:, j_cor, ::-1].T, red),
                ),
            ]
            label = Image.new("RGB", (150, PANEL), (0, 0, 0))
            draw = ImageDraw.Draw(label)
            fl, dw = ses["flair"], ses["dwi"]
            text = (
                f"day {ses['day']}\n{ses['study_date']}\n{ses['vendor_style']}\n\n"
                f"FLAIR {fl['volume_ml_model_1mm']:.1f} mL\n DWI {dw['volume_ml_model_1mm']:.1f} mL"
            )
            draw.multiline_text((8, 8), text, fill=(255, 255, 255))
            row = Image.new("RGB", (150 + 5 * PANEL, PANEL), (0, 0, 0))
            row.paste(label, (0, 0))
            for n, p in enumerate(panels):
                row.paste(p, (150 + n * PANEL + (PANEL - p.width) // 2, (PANEL - p.height) // 2))
            rows.append(row)
        header = Image.new("RGB", (150 + 5 * PANEL, 22), (0, 0, 0))
        draw = ImageDraw.Draw(header)
        for n, title in enumerate(
            [
                "DWI b=1000",
                "ADC (0-2000 um2/s)",
                "FLAIR",
                "FLAIR, low slice",
                "FLAIR coronal reformat",
            ]
        ):
            draw.text((150 + n * PANEL + 6, 5), title, fill=(255, 255, 0))
        sheet = Image.new("RGB", (header.width, header.height + PANEL * len(rows)), (0, 0, 0))
        sheet.paste(header, (0, 0))
        for n, row in enumerate(rows):
            sheet.paste(row, (0, header.height + n * PANEL))
        name = "sessions_overlay.png" if with_overlay else "sessions.png"
        sheet.save(out_dir / name)
        written.append(out_dir / name)
    return written
