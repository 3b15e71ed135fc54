"""The intervals of a re-analysis of the same real FLAIR after a rigid re-slice (issue 16, point 3).

For the real MS patient ``open_ms_patient07`` (skull-stripped 1 mm 3D FLAIR) and each native clinical
2D FLAIR of ``open_ms_raw_flair`` (with skull, 3-3.3 mm slices), a two-session case is built in a
temporary folder: session 1 is the image as it is (a symlink, nothing copied), session 2 the same
image re-sliced: the grid (same spacing, padded by 8 mm on every side so that nothing leaves the field
of view) is turned by a few degrees about the image's centre (seeded, 1-3 degrees about each axis,
random sign) and shifted by a fraction of a voxel (0.2-0.8 along each axis), and the image is
resampled onto it with linear interpolation (:func:`imaging.register.resample`; integer images are
rounded back to their type, as a scanner's reconstruction stores them). The case is analysed
in-process (``followup.analyze.analyze_case`` at ``--uncertainty``). The truth is no change: the change
interval should contain 0 and the label should be "within noise". What remains is the analysis'
own re-slice variability (interpolation blur, most of all across thick slices, template fit, session
registration and segmentation on a resampled image).

Usage: ``python benchmarks/reslice_realdata.py [--reslices N] [--uncertainty LEVEL] [--keep DIR]
[--out FILE.md]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from calibrate_uncertainty import analyse, number, uncertainty_ready  # noqa: E402
from flair_cohort import realdata_root  # noqa: E402

from imaging.image import MRImage  # noqa: E402
from imaging.register import resample  # noqa: E402
from imaging.sequence import SequenceClass  # noqa: E402
from synthetic.fields import rng_for  # noqa: E402
from synthetic.ms_flair import rotation_xyz  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
#: The grid of the re-slice is padded by this much (mm) on every side.
PAD_MM = 8.0


@dataclass(frozen=True)
class Reslice:
    """A rigid re-slice: rotation about the image centre, then a sub-voxel shift of the grid."""

    angles_deg: tuple[float, float, float]
    shift_vox: tuple[float, float, float]

    @classmethod
    def draw(cls, seed: int) -> Reslice:
        """1-3 degrees about each axis (random sign), 0.2-0.8 voxel along each grid axis."""
        rng = rng_for(seed, "reslice_realdata")
        angles = rng.uniform(1.0, 3.0, 3) * rng.choice([-1.0, 1.0], 3)
        shift = rng.uniform(0.2, 0.8, 3)
        return cls(
            (float(angles[0]), float(angles[1]), float(angles[2])),
            (float(shift[0]), float(shift[1]), float(shift[2])),
        )

    def grid(self, image: MRImage) -> MRImage:
        """The re-sliced grid of ``image`` (same spacing, padded by ``PAD_MM``), data all zero.

        Parameters
        ----------
        image : MRImage
            The original image (3-D).

        Returns
        -------
        MRImage
            Zeros of shape (I + 2 pI, J + 2 pJ, K + 2 pK) on the turned and shifted grid.
        """
        affine = image.affine
        spacing = np.asarray(image.spacing_mm)
        pad = np.ceil(PAD_MM / spacing).astype(int)
        shape = np.asarray(image.spatial_shape) + 2 * pad
        centre = image.voxel_to_world_mm((np.asarray(image.spatial_shape) - 1) / 2.0)
        padded = affine.copy()
        padded[:3, 3] = affine[:3, 3] - affine[:3, :3] @ pad
        padded[:3, 3] += affine[:3, :3] @ np.asarray(self.shift_vox)
        turn = np.eye(4)
        turn[:3, :3] = rotation_xyz(np.deg2rad(np.asarray(self.angles_deg)))
        turn[:3, 3] = centre - turn[:3, :3] @ centre
        return MRImage(np.zeros(tuple(int(n) for n in shape), np.uint8), turn @ padded)


def resliced(image: MRImage, reslice: Reslice) -> MRImage:
    """``image`` resampled (linear) onto ``reslice.grid(image)``; integer types rounded back."""
    out = resample(image, reslice.grid(image), interpolation="linear", default=0.0)
    data = np.asarray(out.data, dtype=np.float32)
    dtype = np.asarray(image.data).dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.round(data), info.min, info.max).astype(dtype)
    return MRImage(data, out.affine, sequence=SequenceClass.FLAIR)


def images(root: Path) -> list[tuple[str, Path]]:
    """(name, FLAIR path) of patient07 and of every native FLAIR, those present."""
    found = []
    patient07 = root / "open_ms_patient07" / "FLAIR.nii.gz"
    if patient07.is_file():
        found.append(("patient07", patient07))
    for path in sorted((root / "open_ms_raw_flair").glob("*_FLAIR.nii.gz")):
        found.append((path.name.replace("_FLAIR.nii.gz", "").replace("_", ""), path))
    return found


def build_case(case: Path, name: str, flair: Path, reslice: Reslice) -> MRImage:
    """The two-session case: ses-01 the image (symlink), ses-02 its re-slice; returns the latter."""
    loaded = nib.load(flair)
    assert isinstance(loaded, nib.Nifti1Image)
    image = MRImage.from_nifti(loaded, sequence=SequenceClass.FLAIR)
    second = resliced(image, reslice)
    for session, write in (("ses-01", None), ("ses-02", second)):
        anat = case / session / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        target = anat / f"sub-{name}_{session}_FLAIR.nii.gz"
        if write is None:
            target.symlink_to(flair.resolve())
        else:
            nib.save(write.to_nifti(), target)
    (case / "sessions.tsv").write_text(
        "session_id\tacq_time\nses-01\t2024-01-10\nses-02\t2024-07-10\n"
    )
    return second


def run_one(name: str, flair: Path, reslice: Reslice, work: Path, level: str) -> dict[str, Any]:
    """Build, analyse and summarise one re-slice of one image."""
    record: dict[str, Any] = {
        "image": name,
        "angles_deg": reslice.angles_deg,
        "shift_vox": reslice.shift_vox,
    }
    try:
        case = work / "cases" / name
        build_case(case, name, flair, reslice)
        start = time.perf_counter()
        sessions, lesions = analyse(case, work / "out", level)
        record["seconds"] = time.perf_counter() - start
        by_session = {str(r.get("session_id")): r for r in sessions}
        for session in ("ses-01", "ses-02"):
            row = by_session.get(session, {})
            record[session] = {
                "volume_ml": number(row.get("flair_lesion_volume_ml")),
                "ci_low": number(row.get("flair_lesion_volume_ml_ci_low")),
                "ci_high": number(row.get("flair_lesion_volume_ml_ci_high")),
                "brain_ml": number(row.get("brain_volume_ml")),
            }
        second = by_session.get("ses-02", {})
        low = number(second.get("flair_lesion_volume_change_ml_ci_low"))
        high = number(second.get("flair_lesion_volume_change_ml_ci_high"))
        record.update(
            {
                "change_ml": number(second.get("flair_lesion_volume_change_ml")),
                "change_ci_low": low,
                "change_ci_high": high,
                "contains_zero": None if low is None or high is None else low <= 0.0 <= high,
                "label": str(second.get("flair_lesion_volume_change_beyond_noise", "")),
                "uncertainty_level": str(second.get("uncertainty_level", "")),
                # every FLAIR lesion of the re-slice with a noise label: each beyond noise is a
                # false change (the same brain, the same image)
                "lesion_labels": [
                    str(r.get("change_beyond_noise"))
                    for r in lesions
                    if r.get("session_id") == "ses-02"
                    and r.get("source", "flair") == "flair"
                    and r.get("change_beyond_noise")
                ],
            }
        )
    except Exception as error:  # report, do not stop: every image gets its row
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc(limit=6)
    return record


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _beyond(labels: list[str]) -> int:
    """How many noise labels call a change (``increase`` or ``decrease``)."""
    return sum(1 for label in labels if label in ("increase", "decrease"))


def report(records: list[dict[str, Any]], command: str, level: str) -> str:
    """The results file."""
    lines = [
        "# Re-analysis of the same real FLAIR after a rigid re-slice",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Run {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; --uncertainty {level}. "
        "Truth: no change (the interval should contain 0, the label should be 'within noise').",
        "",
        "| image | re-slice (deg x, y, z; shift vox) | ses-01 mL [95 %] | ses-02 mL [95 %] | "
        "change mL [95 %] | contains 0 | label | lesions beyond noise | analysis s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        move = (
            ", ".join(f"{a:+.1f}" for a in r["angles_deg"])
            + "; "
            + ", ".join(f"{s:.2f}" for s in r["shift_vox"])
        )
        if "error" in r:
            lines.append(f"| {r['image']} | {move} | ERROR: {r['error'][:160]} | | | | | | |")
            continue
        s1, s2 = r["ses-01"], r["ses-02"]
        zero = {None: "no interval", True: "yes", False: "**no**"}[r["contains_zero"]]
        lines.append(
            f"| {r['image']} | {move} | {_fmt(s1['volume_ml'])} [{_fmt(s1['ci_low'])}, "
            f"{_fmt(s1['ci_high'])}] | {_fmt(s2['volume_ml'])} [{_fmt(s2['ci_low'])}, "
            f"{_fmt(s2['ci_high'])}] | {_fmt(r['change_ml'])} [{_fmt(r['change_ci_low'])}, "
            f"{_fmt(r['change_ci_high'])}] | {zero} | {r['label'] or '-'} | "
            f"{_beyond(r['lesion_labels'])}/{len(r['lesion_labels'])} | {r['seconds']:.0f} |"
        )
    done = [r for r in records if "error" not in r]
    hits = sum(1 for r in done if r["contains_zero"])
    within = sum(1 for r in done if r["label"] == "within noise")
    labels = [x for r in done for x in r["lesion_labels"]]
    lines += [
        "",
        f"{hits}/{len(done)} change intervals contain 0; {within}/{len(done)} labelled 'within "
        f"noise'; per lesion (every labelled FLAIR lesion row of the re-slice: one-to-one, new "
        f"and resolved), {_beyond(labels)}/{len(labels)} beyond noise (false changes); "
        f"{len(records) - len(done)} failed.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reslices", type=int, default=1, help="re-slices per image (seeded)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--uncertainty", default="standard")
    parser.add_argument("--keep", type=Path, help="build and keep the cases here")
    parser.add_argument("--out", type=Path, default=RESULTS / "uncertainty_reslice.md")
    args = parser.parse_args(argv)
    command = "python benchmarks/reslice_realdata.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    missing = uncertainty_ready()
    if missing:
        print(f"cannot run: {missing}", file=sys.stderr)
        return 2
    found = images(realdata_root())
    if not found:
        print(f"skipped: no FLAIR found under {realdata_root()} (set LEUKOTRACK_REALDATA)")
        return 0
    records = []
    with tempfile.TemporaryDirectory(prefix="reslice_") as tmp:
        work = args.keep or Path(tmp)
        for name, path in found:
            for r in range(args.reslices):
                reslice = Reslice.draw(args.seed + 1000 * r + sum(map(ord, name)))
                label = name if args.reslices == 1 else f"{name}r{r}"
                record = run_one(label, path, reslice, work / label, args.uncertainty)
                records.append(record)
                print(f"{label}: {record.get('error') or record.get('label')}", file=sys.stderr)
    text = report(records, command.strip(), args.uncertainty)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command.strip(), "records": records}, indent=1) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
