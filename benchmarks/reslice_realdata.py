"""The intervals of a re-analysis of the same real image after a rigid re-slice (issue 16, point 3).

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

The real stroke DWI of ``ads_dwi`` go through the same test (``--dwi``, on by default): Subject01 as
``b0+trace`` (a large territorial infarct) and Subject02 as ``trace+adc`` (a small pontine infarct, the
scanner's ADC map, no b = 0: what clinical exports carry). Every volume of the series (b = 0, trace,
ADC) is re-sliced with the same move. The scores are the DWI lesion volume's change, the rADC's
change and every labelled DWI lesion row. A re-slice keeps the image's own noise (only
interpolated), so it tests less than a rescan: an interval that misses 0 here is too narrow; one that
holds 0 is not thereby shown to be wide enough for a rescan.

Usage: ``python benchmarks/reslice_realdata.py [--reslices N] [--dwi-reslices N] [--uncertainty LEVEL]
[--keep DIR] [--out FILE.md]``
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


def resliced(
    image: MRImage, reslice: Reslice, sequence: SequenceClass = SequenceClass.FLAIR
) -> MRImage:
    """``image`` resampled (linear) onto ``reslice.grid(image)``; integer types rounded back."""
    out = resample(image, reslice.grid(image), interpolation="linear", default=0.0)
    data = np.asarray(out.data, dtype=np.float32)
    dtype = np.asarray(image.data).dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.round(data), info.min, info.max).astype(dtype)
    return MRImage(data, out.affine, sequence=sequence)


@dataclass(frozen=True)
class RealImage:
    """A real image to re-slice: a FLAIR, or a DWI series (trace, optional b = 0 and ADC map)."""

    name: str
    kind: str  # "flair" or "dwi"
    path: Path
    b0: Path | None = None
    adc: Path | None = None

    @property
    def dwi_input(self) -> str:
        """The series' make-up as ``sessions.tsv`` names it (``b0+trace``, ``trace+adc``...)."""
        return "+".join(
            part
            for part, there in (("b0", self.b0), ("trace", self.path), ("adc", self.adc))
            if there
        )


def images(root: Path) -> list[RealImage]:
    """patient07 and every native FLAIR, those present."""
    found = []
    patient07 = root / "open_ms_patient07" / "FLAIR.nii.gz"
    if patient07.is_file():
        found.append(RealImage("patient07", "flair", patient07))
    for path in sorted((root / "open_ms_raw_flair").glob("*_FLAIR.nii.gz")):
        name = path.name.replace("_FLAIR.nii.gz", "").replace("_", "")
        found.append(RealImage(name, "flair", path))
    return found


def dwi_images(root: Path) -> list[RealImage]:
    """The ``ads_dwi`` stroke DWI, those present: Subject01 ``b0+trace``, Subject02 ``trace+adc``."""
    folder = root / "ads_dwi"
    found = []
    for subject, with_b0, with_adc in (("Subject01", True, False), ("Subject02", False, True)):
        trace = folder / subject / f"{subject}_DWI.nii.gz"
        b0 = folder / subject / f"{subject}_b0.nii.gz"
        adc = folder / subject / f"{subject}_ADC.nii.gz"
        if trace.is_file() and (b0.is_file() or not with_b0) and (adc.is_file() or not with_adc):
            found.append(
                RealImage(
                    f"ads{subject}",
                    "dwi",
                    trace,
                    b0=b0 if with_b0 else None,
                    adc=adc if with_adc else None,
                )
            )
    return found


def _load(path: Path, sequence: SequenceClass) -> MRImage:
    loaded = nib.load(path)
    assert isinstance(loaded, nib.Nifti1Image)
    return MRImage.from_nifti(loaded, sequence=sequence)


def _save_dwi(folder: Path, stem: str, image: RealImage, reslice: Reslice | None) -> None:
    """The DWI series (b = 0 and trace stacked as one 4-D file with its .bval; the ADC map beside
    it), as they are (``reslice`` None) or re-sliced."""
    volumes = [(0.0, image.b0)] if image.b0 is not None else []
    volumes.append((1000.0, image.path))
    stacked = []
    for _, path in volumes:
        volume = _load(path, SequenceClass.DWI)
        stacked.append(volume if reslice is None else resliced(volume, reslice, SequenceClass.DWI))
    data = np.stack([np.asarray(v.data, np.float32) for v in stacked], axis=-1)
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, stacked[0].affine), folder / f"{stem}_dwi.nii.gz")
    (folder / f"{stem}_dwi.bval").write_text(" ".join(f"{b:g}" for b, _ in volumes))
    if image.adc is not None:
        adc = _load(image.adc, SequenceClass.ADC)
        if reslice is not None:
            adc = resliced(adc, reslice, SequenceClass.ADC)
        nib.save(adc.to_nifti(), folder / f"{stem}_ADC.nii.gz")


def build_case(case: Path, name: str, image: RealImage, reslice: Reslice) -> None:
    """The two-session case: ses-01 the image (a symlink for a FLAIR), ses-02 its re-slice."""
    for session in ("ses-01", "ses-02"):
        move = None if session == "ses-01" else reslice
        stem = f"sub-{name}_{session}"
        if image.kind == "dwi":
            _save_dwi(case / session / "dwi", stem, image, move)
            continue
        anat = case / session / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        target = anat / f"{stem}_FLAIR.nii.gz"
        if move is None:
            target.symlink_to(image.path.resolve())
        else:
            nib.save(resliced(_load(image.path, SequenceClass.FLAIR), move).to_nifti(), target)
    (case / "sessions.tsv").write_text(
        "session_id\tacq_time\nses-01\t2024-01-10\nses-02\t2024-07-10\n"
    )


def _interval(row: dict[str, Any], key: str) -> dict[str, Any]:
    """A ``sessions.tsv`` value with its interval and, for a change, whether it holds 0 and its
    noise label."""
    low, high = number(row.get(f"{key}_ci_low")), number(row.get(f"{key}_ci_high"))
    return {
        "value": number(row.get(key)),
        "ci_low": low,
        "ci_high": high,
        "contains_zero": None if low is None or high is None else low <= 0.0 <= high,
    }


def run_one(
    name: str, image: RealImage, reslice: Reslice, work: Path, level: str
) -> dict[str, Any]:
    """Build, analyse and summarise one re-slice of one image."""
    record: dict[str, Any] = {
        "image": name,
        "kind": image.kind,
        "angles_deg": reslice.angles_deg,
        "shift_vox": reslice.shift_vox,
    }
    source = image.kind  # "flair" or "dwi": the lesions.tsv source and the sessions.tsv prefix
    try:
        case = work / "cases" / name
        build_case(case, name, image, reslice)
        start = time.perf_counter()
        sessions, lesions = analyse(case, work / "out", level)
        record["seconds"] = time.perf_counter() - start
        by_session = {str(r.get("session_id")): r for r in sessions}
        for session in ("ses-01", "ses-02"):
            row = by_session.get(session, {})
            record[session] = {
                "volume_ml": number(row.get(f"{source}_lesion_volume_ml")),
                "ci_low": number(row.get(f"{source}_lesion_volume_ml_ci_low")),
                "ci_high": number(row.get(f"{source}_lesion_volume_ml_ci_high")),
                "brain_ml": number(row.get("brain_volume_ml")),
                "dwi_input": str(row.get("dwi_input", "")),
                "radc": _interval(row, "radc"),
            }
        second = by_session.get("ses-02", {})
        change = _interval(second, f"{source}_lesion_volume_change_ml")
        radc_change = _interval(second, "radc_change")
        radc_change["label"] = str(second.get("radc_change_beyond_noise", ""))
        record.update(
            {
                "change_ml": change["value"],
                "change_ci_low": change["ci_low"],
                "change_ci_high": change["ci_high"],
                "contains_zero": change["contains_zero"],
                "label": str(second.get(f"{source}_lesion_volume_change_beyond_noise", "")),
                "radc_change": radc_change,
                "uncertainty_level": str(second.get("uncertainty_level", "")),
                # every lesion of the re-slice's source with a noise label: each beyond noise is
                # a false change (the same brain, the same image)
                "lesion_labels": [
                    str(r.get("change_beyond_noise"))
                    for r in lesions
                    if r.get("session_id") == "ses-02"
                    and r.get("source", "flair") == source
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


def _z(value: float | None, low: float | None, high: float | None) -> str:
    """The change in units of its interval's SD (width / 3.92): how near 0 comes to an end."""
    if value is None or low is None or high is None or high <= low:
        return "-"
    return f"{value / ((high - low) / 3.92):+.2f}"


def _move(r: dict[str, Any]) -> str:
    return (
        ", ".join(f"{a:+.1f}" for a in r["angles_deg"])
        + "; "
        + ", ".join(f"{s:.2f}" for s in r["shift_vox"])
    )


def _zero(contains: bool | None) -> str:
    return {None: "no interval", True: "yes", False: "**no**"}[contains]


def _summary(records: list[dict[str, Any]], what: str, source: str) -> str:
    done = [r for r in records if "error" not in r]
    hits = sum(1 for r in done if r["contains_zero"])
    within = sum(1 for r in done if r["label"] == "within noise")
    labels = [x for r in done for x in r["lesion_labels"]]
    return (
        f"{what}: {hits}/{len(done)} change intervals contain 0; {within}/{len(done)} labelled "
        f"'within noise'; per lesion (every labelled {source} lesion row of the re-slice: "
        f"one-to-one, new and resolved), {_beyond(labels)}/{len(labels)} beyond noise (false "
        f"changes); {len(records) - len(done)} failed."
    )


def report(records: list[dict[str, Any]], command: str, level: str) -> str:
    """The results file: a FLAIR table and a DWI table."""
    lines = [
        "# Re-analysis of the same real image after a rigid re-slice",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Run {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; --uncertainty {level}. "
        "Truth: no change (the interval should contain 0, the label should be 'within noise'). "
        "z: the change in units of its interval's SD (width / 3.92); |z| > 1.96 is a false change.",
    ]
    flair = [r for r in records if r.get("kind", "flair") == "flair"]
    dwi = [r for r in records if r.get("kind") == "dwi"]
    if flair:
        lines += [
            "",
            "## FLAIR lesion volume",
            "",
            "| image | re-slice (deg x, y, z; shift vox) | ses-01 mL [95 %] | ses-02 mL [95 %] | "
            "change mL [95 %] | z | contains 0 | label | lesions beyond noise | analysis s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in flair:
            if "error" in r:
                lines.append(f"| {r['image']} | {_move(r)} | ERROR: {r['error'][:160]} |||||||")
                continue
            s1, s2 = r["ses-01"], r["ses-02"]
            lines.append(
                f"| {r['image']} | {_move(r)} | {_fmt(s1['volume_ml'])} [{_fmt(s1['ci_low'])}, "
                f"{_fmt(s1['ci_high'])}] | {_fmt(s2['volume_ml'])} [{_fmt(s2['ci_low'])}, "
                f"{_fmt(s2['ci_high'])}] | {_fmt(r['change_ml'])} [{_fmt(r['change_ci_low'])}, "
                f"{_fmt(r['change_ci_high'])}] | "
                f"{_z(r['change_ml'], r['change_ci_low'], r['change_ci_high'])} | "
                f"{_zero(r['contains_zero'])} | {r['label'] or '-'} | "
                f"{_beyond(r['lesion_labels'])}/{len(r['lesion_labels'])} | {r['seconds']:.0f} |"
            )
        lines += ["", _summary(flair, "FLAIR", "FLAIR")]
    if dwi:
        lines += [
            "",
            "## DWI lesion volume and rADC",
            "",
            "| image | input | re-slice (deg x, y, z; shift vox) | ses-01 mL [95 %] | "
            "ses-02 mL [95 %] | change mL [95 %] | z | label | rADC ses-01 [95 %] | "
            "rADC change [95 %] | z | label | DWI lesions beyond noise | analysis s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in dwi:
            if "error" in r:
                lines.append(
                    f"| {r['image']} | | {_move(r)} | ERROR: {r['error'][:160]} ||||||||||"
                )
                continue
            s1, s2 = r["ses-01"], r["ses-02"]
            radc, change = s1["radc"], r["radc_change"]
            lines.append(
                f"| {r['image']} | {s1['dwi_input'] or '-'} | {_move(r)} | "
                f"{_fmt(s1['volume_ml'])} [{_fmt(s1['ci_low'])}, {_fmt(s1['ci_high'])}] | "
                f"{_fmt(s2['volume_ml'])} [{_fmt(s2['ci_low'])}, {_fmt(s2['ci_high'])}] | "
                f"{_fmt(r['change_ml'])} [{_fmt(r['change_ci_low'])}, "
                f"{_fmt(r['change_ci_high'])}] | "
                f"{_z(r['change_ml'], r['change_ci_low'], r['change_ci_high'])} | "
                f"{r['label'] or '-'} | {_fmt(radc['value'], 3)} [{_fmt(radc['ci_low'], 3)}, "
                f"{_fmt(radc['ci_high'], 3)}] | {_fmt(change['value'], 3)} "
                f"[{_fmt(change['ci_low'], 3)}, {_fmt(change['ci_high'], 3)}] | "
                f"{_z(change['value'], change['ci_low'], change['ci_high'])} | "
                f"{change['label'] or '-'} | "
                f"{_beyond(r['lesion_labels'])}/{len(r['lesion_labels'])} | {r['seconds']:.0f} |"
            )
        lines += ["", _summary(dwi, "DWI", "DWI")]
        radc_done = [r for r in dwi if "error" not in r and r["radc_change"]["label"]]
        radc_within = sum(1 for r in radc_done if r["radc_change"]["label"] == "within noise")
        lines.append(f"rADC: {radc_within}/{len(radc_done)} rADC changes labelled 'within noise'.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reslices", type=int, default=1, help="re-slices per FLAIR (seeded)")
    parser.add_argument(
        "--dwi-reslices", type=int, default=3, help="re-slices per real DWI (seeded; 0: none)"
    )
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
    root = realdata_root()
    found = [(image, args.reslices) for image in images(root)]
    found += [(image, args.dwi_reslices) for image in dwi_images(root)]
    if not any(count for _, count in found):
        print(f"skipped: no real image found under {root} (set LEUKOTRACK_REALDATA)")
        return 0
    records = []
    with tempfile.TemporaryDirectory(prefix="reslice_") as tmp:
        work = args.keep or Path(tmp)
        for image, count in found:
            for r in range(count):
                reslice = Reslice.draw(args.seed + 1000 * r + sum(map(ord, image.name)))
                label = image.name if count == 1 else f"{image.name}r{r}"
                record = run_one(label, image, reslice, work / label, args.uncertainty)
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
