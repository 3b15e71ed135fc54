"""CPU time of one FLAIR session through ``leukotrack analyze`` on real clinical FLAIRs (issue 13).

Targets: at most 10 s of CPU for a 2-D session, 15 s for a 1 mm 3-D session, everything included
(Python start-up and imports, loading, N4, brain estimate, template fit, segmentation, writing).
CPU time is user + system of the process and its children (GNU time), so it does not depend on how
busy the machine is; wall time is shown for reference only.

Cases (NIfTI case folders built in a temporary folder, never in the repository):

* the three native 2-D FLAIRs with skull of ``../shared/realdata/open_ms_raw_flair``;
* ``../shared/realdata/open_ms_patient07/FLAIR.nii.gz``: 1 mm 3-D, skull-stripped, 182x218x182;
* a 1 mm 3-D FLAIR with skull: patient09's native FLAIR resampled (linear) onto a 1 mm isotropic
  grid of 220x240x176 voxels covering the head, the size of a clinical 3-D FLAIR.

Also prints the in-process CPU per step (``time.process_time``, one run) and the template fit's
figures. Usage: ``python benchmarks/bench_front_end.py [--realdata ../shared/realdata]
[--out benchmarks/results/front_end.md]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
from imaging.image import MRImage  # noqa: E402
from imaging.pipeline import process_case  # noqa: E402
from imaging.register import resample  # noqa: E402


def one_session_case(folder: Path, flair: Path) -> Path:
    """A one-session NIfTI case folder whose FLAIR links to ``flair``."""
    anat = folder / "ses-01" / "anat"
    anat.mkdir(parents=True)
    (anat / "sub-x_ses-01_FLAIR.nii.gz").symlink_to(flair.resolve())
    (folder / "sessions.tsv").write_text("session_id\tacq_time\nses-01\t2020-01-01\n")
    return folder


def _iso_1mm(source: Path, target: Path) -> Path:
    nifti = nib.load(source)
    assert isinstance(nifti, nib.Nifti1Image)
    image = MRImage(np.asarray(nifti.dataobj, dtype=np.float32), nifti.affine).reoriented("RAS")
    shape = (220, 240, 176)
    ijk = np.argwhere(np.asarray(image.data) > 0.1 * np.percentile(image.data, 99))
    centre = image.voxel_to_world_mm(ijk).mean(axis=0)
    affine = np.eye(4)
    affine[:3, 3] = centre - np.array(shape) / 2
    grid = MRImage(np.zeros(shape, np.float32), affine)
    moved = resample(image, grid)
    nib.save(nib.Nifti1Image(np.asarray(moved.data, dtype=np.float32), moved.affine), target)
    return target


def _cpu(command: list[str]) -> tuple[float, float]:
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%U %S %e", *command], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"analyze failed:\n{result.stderr[-2000:]}")
    user, system, wall = result.stderr.strip().splitlines()[-1].split()
    return float(user) + float(system), float(wall)


def _steps(case: Path) -> tuple[dict[str, float], dict[str, object]]:
    steps: dict[str, float] = {}
    state: dict[str, Any] = {"step": "", "start": time.process_time()}

    def record(message: str) -> None:
        now = time.process_time()
        if state["step"]:
            kind = str(state["step"]).split(": ", 1)[-1]
            steps[kind] = steps.get(kind, 0.0) + now - float(state["start"])
        state["step"], state["start"] = message, now

    processed = process_case(scan_case(case), progress=record)
    record("end")
    quality = processed.template.quality
    session = processed.sessions[0]
    assert session.flair is not None and session.flair_brain is not None
    brain_ml = float(np.count_nonzero(session.flair_brain.data)) * session.flair.voxel_volume_mm3
    figures: dict[str, object] = {
        "stripped": processed.template.stripped,
        "fit_ok": quality.ok if quality else None,
        "fit_dice": round(quality.brain_dice, 3) if quality else None,
        "scales": [round(s, 3) for s in quality.scales] if quality else None,
        "start": quality.initialisation if quality else None,
        "brain_ml": round(brain_ml / 1000, 0),
        "lesion_ml": round(session.flair_result.volume_ml, 2) if session.flair_result else None,
    }
    return steps, figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "front_end.md"
    )
    args = parser.parse_args()
    raw = args.realdata / "open_ms_raw_flair"
    exe = str(Path(sys.executable).parent / "leukotrack")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = [
            (f"{name} (2-D, with skull)", raw / f"{name}_FLAIR.nii.gz", 10.0)
            for name in ("patient04_study1", "patient09_study2", "patient20_study2")
        ]
        cases.append(
            (
                "patient07 (3-D 1 mm, skull-stripped)",
                args.realdata / "open_ms_patient07" / "FLAIR.nii.gz",
                15.0,
            )
        )
        iso = raw / "patient09_study2_FLAIR.nii.gz"
        if iso.is_file():
            cases.append(
                (
                    "patient09 on a 1 mm 3-D grid 220x240x176 (with skull)",
                    _iso_1mm(iso, root / "iso_FLAIR.nii.gz"),
                    15.0,
                )
            )
        for n, (label, flair, target) in enumerate(cases):
            if not flair.is_file():
                print(f"skipped (missing): {flair}")
                continue
            folder = one_session_case(root / f"case{n}", flair)
            shape = nib.load(flair).shape  # type: ignore[attr-defined]
            cpu, wall = _cpu([exe, "analyze", str(folder), "--out", str(root / f"out{n}")])
            steps, figures = _steps(folder)
            rows.append((label, shape, cpu, wall, target, steps, figures))
            print(label, f"CPU {cpu:.1f} s (wall {wall:.1f} s)", json.dumps(figures), flush=True)
    lines = [
        f"CPU time of one FLAIR session through `leukotrack analyze` (fresh process; user + system "
        f"time of the process and its children, GNU time); {time.strftime('%Y-%m-%d')}, "
        "2 shared cores. Reproduce: `python benchmarks/bench_front_end.py`.",
        "",
        "| session | grid | CPU s | target | wall s | template fit | brain mL |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for label, shape, cpu, wall, target, _, figures in rows:
        fit = (
            f"{'ok' if figures['fit_ok'] else 'FLAGGED'}, Dice {figures['fit_dice']}, "
            f"scales {figures['scales']}, {figures['start']}"
            + (", stripped" if figures["stripped"] else "")
        )
        lines.append(
            f"| {label} | {'x'.join(map(str, shape))} | {cpu:.1f} | {target:.0f} | {wall:.1f} | "
            f"{fit} | {figures['brain_ml']:.0f} |"
        )
    step_names = sorted({name for row in rows for name in row[5]})
    lines += [
        "",
        "In-process CPU per step (s, one run; Python start-up, imports and writing are the rest):",
        "",
        "| session | " + " | ".join(step_names) + " |",
        "|---|" + "---:|" * len(step_names),
    ]
    for label, *_, steps, _ in rows:
        lines.append(
            f"| {label} | " + " | ".join(f"{steps.get(n, 0.0):.1f}" for n in step_names) + " |"
        )
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
