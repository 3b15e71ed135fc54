"""Experiment: a paired partial-volume change instead of the engine's voxel count (issue 16, +25 %).

The question: can the smallest lesion loads' changes (1-1.4 mL on 3-4 mm slices, where the engine's
test-retest difference is as large as a +25 % change) be measured more precisely by summing lesion
fractions instead of counting lesion voxels? For each pair that ``benchmarks/calibrate_uncertainty.py
--set dev --keep DIR`` (any ``--uncertainty`` level) left, both sessions' FLAIRs and lesion masks on
the baseline grid are read; the union of the two masks is cut into 26-connected lesions; for each, the
tissue level of each session is the median of the voxels 1.5-4 mm from it (darker than 0.6 of that
median left out: CSF), its lesion contrast the mean over the sessions that found it of the median of
its brighter half divided by the tissue level, and each voxel of the lesion and its 26-neighbours
counts for ``(I / tissue - 1) / (contrast - 1)`` clipped to 0..1. The change of the sums is compared
with the truth's continuous change, the engine's binary change with the truth's binary change.

Result (17 dev pairs, ``--uncertainty off``, 2026-12-05): SD of the change error 1.75 mL (paired
partial volume) against 1.92 mL (binary count), but the partial-volume change followed only part of
the growth (median relative error 8 % against 2 %): not adopted. README, *Uncertainty*.

Usage: ``python benchmarks/pv_change_experiment.py DEV_KEEP_DIR``
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

FULL = np.ones((3, 3, 3), bool)


def _load(path: Path) -> tuple[NDArray[np.float64], float]:
    image = nib.load(str(path))
    assert isinstance(image, nib.Nifti1Image)
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    return np.asarray(image.dataobj, np.float64), voxel_ml


def pv_volumes(
    images: list[NDArray[np.float64]],
    masks: list[NDArray[np.bool_]],
    voxel_ml: float,
    spacing: tuple[float, ...],
) -> list[float]:
    """The two sessions' partial-volume lesion loads (mL) on the union of their masks."""
    union = masks[0] | masks[1]
    out = [0.0, 0.0]
    if not union.any():
        return out
    distance, nearest = ndi.distance_transform_edt(~union, sampling=spacing, return_indices=True)
    components, count = ndi.label(union, structure=FULL)
    owner = components[tuple(nearest)]
    near = distance <= 4.0
    shell = (distance >= 1.5) & near
    ring = ndi.binary_dilation(union, structure=FULL)
    for label in range(1, count + 1):
        own = components == label
        region = near & (owner == label) & ring
        around = shell & (owner == label)
        tissue, contrast = [], []
        for image, mask in zip(images, masks, strict=True):
            values = image[around]
            values = values[values > 0.6 * np.median(values)] if values.size else values
            level = float(np.median(values)) if values.size >= 5 else np.nan
            tissue.append(level)
            found = image[own & mask]
            if found.size and np.isfinite(level):
                contrast.append(float(np.median(found[found >= np.median(found)])) / level)
        c = float(np.mean(contrast)) if contrast else np.nan
        for s in range(2):
            if not np.isfinite(c) or c <= 1.02 or not np.isfinite(tissue[s]):
                out[s] += float((own & masks[s]).sum()) * voxel_ml
                continue
            share = np.clip((images[s][region] / tissue[s] - 1.0) / (c - 1.0), 0.0, 1.0)
            out[s] += float(share.sum()) * voxel_ml
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the --keep folder of a dev calibration run")
    folder = parser.parse_args(argv).folder
    if not any(folder.glob("truth*/cases/*/truth.json")):
        print(f"no kept calibration pairs under {folder} (run calibrate_uncertainty.py --keep)")
        return 2
    binary_errors, pv_errors, binary_rel, pv_rel = [], [], [], []
    for case in sorted(folder.glob("truth*/cases/*")):
        truth = json.loads((case / "truth.json").read_text())
        name = case.name
        out = case.parent.parent / "out" / f"sub-{name}"
        if not (out / "sessions.tsv").is_file():
            continue
        images, masks = [], []
        voxel_ml = 0.0
        for session in ("ses-01", "ses-02"):
            image, voxel_ml = _load(
                out / session / "anat" / f"sub-{name}_{session}_space-baseline_FLAIR.nii.gz"
            )
            mask, _ = _load(
                out / session / f"sub-{name}_{session}_space-baseline_desc-flairlesions_dseg.nii.gz"
            )
            images.append(image)
            masks.append(mask > 0)
        grid = nib.load(out / "ses-01" / "anat" / f"sub-{name}_ses-01_space-baseline_FLAIR.nii.gz")
        assert isinstance(grid, nib.Nifti1Image)
        spacing = tuple(float(z) for z in grid.header.get_zooms()[:3])
        with (out / "sessions.tsv").open() as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        binary = [float(r["flair_lesion_volume_ml"] or 0.0) for r in rows]
        pv = pv_volumes(images, masks, voxel_ml, spacing)
        true_binary = truth["binary_volume_ml"][1] - truth["binary_volume_ml"][0]
        true_continuous = truth["volume_ml"][1] - truth["volume_ml"][0]
        binary_errors.append(binary[1] - binary[0] - true_binary)
        pv_errors.append(pv[1] - pv[0] - true_continuous)
        binary_rel.append(abs(binary_errors[-1]) / max(truth["binary_volume_ml"][0], 0.1))
        pv_rel.append(abs(pv_errors[-1]) / max(truth["volume_ml"][0], 0.1))
        print(
            f"{name}: true {true_binary:+.2f} / {true_continuous:+.2f} mL, "
            f"binary {binary[1] - binary[0]:+.2f}, partial volume {pv[1] - pv[0]:+.2f}"
        )
    if not pv_errors:
        print(f"no analysed pair under {folder}")
        return 2
    print(
        f"{len(pv_errors)} pairs: SD of the change error {np.std(binary_errors):.2f} mL (binary) / "
        f"{np.std(pv_errors):.2f} mL (partial volume); median relative error "
        f"{100 * np.median(binary_rel):.0f} % / {100 * np.median(pv_rel):.0f} %"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
