"""Build the MS lesion-frequency prior shipped in ``imaging/data/`` from expert lesion masks.

Input: the consensus expert lesion masks of the open_ms_data cross-sectional database on the 1 mm
MNI grid (``../shared/realdata/open_ms_masks_mni/patientNN_lesions_mni.nii.gz``; Lesjak et al.,
Neuroinformatics 2017, CC-BY). **patient07 is left out**: it is the real case the FLAIR method is
validated on, and a prior built with its own mask would score it on its own answer. The script also
refuses any mask identical to ``open_ms_patient07/lesion_mask.nii.gz``.

Method: voxel-wise lesion frequency over the N masks (fraction of patients with a lesion there),
smoothed with a Gaussian (``--sigma-mm``, default 4 mm: the masks are registered affinely, not
voxel-exactly, and 27 patients are few), averaged over 2 x 2 x 2 mm blocks (the template's working
resolution) and stored as uint8 with a scale factor (about 100 kB).

Usage: ``python scripts/build_lesion_prior.py [--realdata DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.lesion_prior import build_lesion_frequency  # noqa: E402

#: Patients whose masks never enter the prior (validation cases).
EXCLUDED = {"patient07"}


def _load(path: Path) -> nib.Nifti1Image:
    image = nib.load(path)
    if not isinstance(image, nib.Nifti1Image):
        raise SystemExit(f"{path} is not a NIfTI-1 image")
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument(
        "--out", type=Path, default=REPO / "imaging" / "data" / "ms_lesion_frequency_mni_2mm.nii.gz"
    )
    parser.add_argument("--sigma-mm", type=float, default=4.0)
    args = parser.parse_args(argv)
    folder = args.realdata / "open_ms_masks_mni"
    validation = _load(args.realdata / "open_ms_patient07" / "lesion_mask.nii.gz")
    validation_mask = np.asarray(validation.dataobj) > 0
    masks = []
    used = []
    affine = None
    for path in sorted(folder.glob("patient*_lesions_mni.nii.gz")):
        match = re.match(r"(patient\d+)_", path.name)
        assert match is not None
        if match.group(1) in EXCLUDED:
            print(f"left out {path.name} (validation case)")
            continue
        image = _load(path)
        data = np.asarray(image.dataobj) > 0
        if data.shape == validation_mask.shape and np.array_equal(data, validation_mask):
            raise SystemExit(f"{path.name} is the validation case's mask; refusing to use it")
        masks.append(data)
        used.append(match.group(1))
        affine = image.affine
    assert affine is not None
    prior = build_lesion_frequency(masks, affine, sigma_mm=args.sigma_mm)
    data = np.asarray(prior.data, dtype=np.float32)
    scale = float(data.max()) / 255.0
    out = nib.Nifti1Image(np.round(data / scale).astype(np.uint8), prior.affine)
    out.header.set_slope_inter(scale, 0.0)
    out.header["descrip"] = f"MS lesion frequency, {len(used)} open_ms masks, s{args.sigma_mm:g}mm"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out, args.out)
    print(
        f"{len(used)} masks ({', '.join(used)}); max frequency {data.max():.3f}; "
        f"mean over voxels > 0.01: {data[data > 0.01].mean():.3f}; wrote {args.out} "
        f"({args.out.stat().st_size} bytes)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
