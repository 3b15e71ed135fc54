"""FreeSurfer's SAMSEG lesion mode as an optional FLAIR engine, run in its own environment.

SAMSEG (Cerri et al., NeuroImage 2021) is a generative whole-brain model with a lesion class; it
adapts to any contrast and needs no retraining. Its wheel ships the atlas and the lesion model and
runs offline, but it pins numpy < 2 and its lesion mode imports tensorflow (about 1.3 GB), so it is
kept out of leukotrack's environment: install it in a virtual environment of its own and point
``LEUKOTRACK_SAMSEG`` at that environment's ``run_samseg``. Pin a released tensorflow: with
``pip install --pre`` pip takes a tensorflow release candidate (2.22.0rc0 on 2026-12-05), with which
SAMSEG's lesion step crashed (segmentation fault) on patient07; 2.21.0 ran::

    python3 -m venv ~/.leukotrack-samseg
    ~/.leukotrack-samseg/bin/pip install samseg==0.4a0 tensorflow-cpu==2.21.0
    export LEUKOTRACK_SAMSEG=~/.leukotrack-samseg/bin/run_samseg

The engine writes the session's FLAIR (and T1 when the session has one, already on the FLAIR grid)
to a temporary folder, runs ``run_samseg --lesion`` on them with FLAIR lesions constrained to be
brighter than cortex (``--lesion-mask-pattern 1 [0]``), and reads back the lesion posterior
(``posteriors/Lesions.mgz``) and SAMSEG's own decision (label 99 of ``seg.mgz``), resampled onto the
FLAIR grid when SAMSEG wrote them on another. It costs 10-16 CPU-minutes and 4.3-4.5 GB per case:
a batch engine, not for the reading room.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from imaging.engines.base import EngineError, EngineInfo, FlairInputs, LesionMap
from imaging.image import MRImage

__all__ = ["SAMSEG", "SamsegFlairEngine", "samseg_executable", "samseg_flair"]

SAMSEG = "samseg"
#: SAMSEG's label for lesions in seg.mgz.
LESION_LABEL = 99


def samseg_executable() -> Path | None:
    """``$LEUKOTRACK_SAMSEG``, else ``run_samseg`` on the PATH, else None."""
    configured = os.environ.get("LEUKOTRACK_SAMSEG")
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_file() else None
    found = shutil.which("run_samseg")
    return Path(found) if found else None


class SamsegFlairEngine:
    """SAMSEG ``--lesion`` on the FLAIR (and the T1 when there is one), called as a subprocess.

    Parameters
    ----------
    threshold : float
        Lesion posterior threshold of SAMSEG's final segmentation (its default 0.3).
    threads : int
        Threads for SAMSEG.
    timeout_s : float
        The run is stopped after this many seconds.
    """

    version = "1"

    def __init__(self, threshold: float = 0.3, threads: int = 1, timeout_s: float = 3600.0):
        self.threshold = threshold
        self.threads = threads
        self.timeout_s = timeout_s

    @property
    def info(self) -> EngineInfo:
        """Name, version and settings (the SAMSEG version is asked from its environment)."""
        return EngineInfo(
            name=SAMSEG,
            version=self.version,
            source="flair",
            parameters={
                "threshold": self.threshold,
                "threads": self.threads,
                "lesion_mask_pattern": "FLAIR +1, T1 0",
                "executable": str(samseg_executable() or ""),
            },
            method=(
                "FLAIR lesions by SAMSEG's lesion mode (FreeSurfer; Cerri et al. 2021), a "
                "contrast-adaptive generative model with a lesion class"
            ),
            dicom_family="ArtificialIntelligence",
            uses_t1=True,
        )

    def segment(self, inputs: FlairInputs) -> LesionMap:
        """Run SAMSEG and return its lesions on the FLAIR grid.

        Raises
        ------
        EngineError
            When SAMSEG is not installed, fails or writes no lesion posterior.
        """
        executable = samseg_executable()
        if executable is None:
            raise EngineError(
                "the samseg engine needs SAMSEG in an environment of its own: "
                "python3 -m venv ~/.leukotrack-samseg && ~/.leukotrack-samseg/bin/pip install "
                "samseg==0.4a0 tensorflow-cpu==2.21.0, then set LEUKOTRACK_SAMSEG="
                "~/.leukotrack-samseg/bin/run_samseg"
            )
        with tempfile.TemporaryDirectory(prefix="leukotrack-samseg-") as folder:
            work = Path(folder)
            images = [("flair", inputs.flair, 1)]
            if inputs.t1 is not None:
                images.append(("t1", inputs.t1, 0))
            command = [str(executable), "-o", str(work / "out"), "--lesion", "--pallidum-separate"]
            for name, image, _pattern in images:
                path = work / f"{name}.nii.gz"
                nib.save(image.to_nifti(), path)
                command += ["-i", str(path)]
            command += ["--lesion-mask-pattern", *(str(p) for _n, _i, p in images)]
            command += ["--threshold", str(self.threshold), "--threads", str(self.threads)]
            command += ["--save-posteriors", "Lesions"]
            try:
                run = subprocess.run(
                    command, capture_output=True, text=True, timeout=self.timeout_s, check=False
                )
            except subprocess.TimeoutExpired as error:
                raise EngineError(f"SAMSEG did not finish within {self.timeout_s:.0f} s") from error
            if run.returncode != 0:
                tail = " | ".join(run.stderr.strip().splitlines()[-3:])
                raise EngineError(f"SAMSEG failed (exit {run.returncode}): {tail}")
            return _read_outputs(work / "out", inputs.flair)


def _on_grid(path: Path, like: MRImage, *, order: int) -> np.ndarray[Any, Any]:
    """An output of SAMSEG on ``like``'s grid (world coordinates; nearest or linear)."""
    from imaging.register import resample

    loaded = nib.load(path)
    image = MRImage(np.asarray(loaded.dataobj, dtype=np.float32), loaded.affine)  # type: ignore[attr-defined]
    if image.same_grid(like):
        return np.asarray(image.data)
    moved = resample(image, like, np.eye(4), interpolation="nearest" if order == 0 else "linear")
    return np.asarray(moved.data)


def _read_outputs(out: Path, flair: MRImage) -> LesionMap:
    posterior_path = out / "posteriors" / "Lesions.mgz"
    seg_path = out / "seg.mgz"
    if not posterior_path.is_file() or not seg_path.is_file():
        raise EngineError(f"SAMSEG wrote no lesion posterior or segmentation in {out}")
    probability = np.clip(_on_grid(posterior_path, flair, order=1), 0, 1).astype(np.float32)
    lesion = _on_grid(seg_path, flair, order=0) == LESION_LABEL
    return LesionMap(
        lesion_mask=flair.with_data(lesion.astype(np.uint8), sequence="OTHER"),
        probability=flair.with_data(probability, sequence="OTHER"),
        details={"samseg_lesion_voxels": int(lesion.sum())},
    )


def samseg_flair(options: Any) -> SamsegFlairEngine:
    """Factory for the registry (SAMSEG's own defaults; ``options`` is not used)."""
    return SamsegFlairEngine()
