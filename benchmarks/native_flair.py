"""The native clinical 2D FLAIRs of ``open_ms_raw_flair`` through the whole pipeline (FLAIR part).

Each FLAIR (with skull, 0.57-0.90 mm in plane, 3-3.3 mm slices; patient20 coarsely quantised) is put
in a temporary one-session NIfTI case (symlinked, nothing copied into the repository) and run through
:func:`imaging.pipeline.process_case` (head mask, N4, brain estimate, template fit, priors incl. the
lesion prior, FLAIR segmentation). There are no expert masks for these images: the check is that they
run without error, with a plausible brain volume, and an overlay PNG to look at
(``docs/validation/native_<name>.png`` with ``--png``).

Usage: ``python benchmarks/native_flair.py [--png] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.case import scan_case  # noqa: E402
from imaging.pipeline import process_case  # noqa: E402
from imaging.units import mm3_to_ml  # noqa: E402


def realdata_root() -> Path:
    import os

    configured = os.environ.get("LEUKOTRACK_REALDATA")
    return Path(configured) if configured else REPO.parent / "shared" / "realdata"


def save_overlay(flair: np.ndarray, brain: np.ndarray, lesion: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    nz = flair.shape[2]
    slices = np.linspace(0.35 * nz, 0.8 * nz, 5).astype(int)
    top = float(np.percentile(flair[brain], 99.5))
    fig, axes = plt.subplots(1, len(slices), figsize=(3 * len(slices), 3.4))
    for ax, k in zip(axes, slices, strict=True):
        rgb = np.repeat(np.clip(flair[:, :, k] / top, 0, 1)[..., None], 3, axis=2)
        edge = brain[:, :, k] & ~np.roll(brain[:, :, k], 1, axis=0)
        rgb[edge] = (0.2, 0.5, 1.0)
        rgb[lesion[:, :, k]] = (1.0, 0.1, 0.1)
        ax.imshow(np.flipud(rgb.transpose(1, 0, 2)))
        ax.set_title(f"slice {k}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{path.stem}: brain edge blue, FLAIR lesion red", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=50)
    plt.close(fig)
    with Image.open(path) as rendered:
        small = rendered.convert("RGB").quantize(colors=64)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    folder = realdata_root() / "open_ms_raw_flair"
    lines = [
        "| FLAIR | shape | spacing mm | brain mL | FLAIR lesion mL (lesions) | seconds (wall) | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted(folder.glob("*_FLAIR.nii.gz")):
        name = path.name.replace("_FLAIR.nii.gz", "")
        with tempfile.TemporaryDirectory() as tmp:
            case = Path(tmp) / name
            anat = case / "ses-1" / "anat"
            anat.mkdir(parents=True)
            (anat / f"sub-{name}_ses-1_FLAIR.nii.gz").symlink_to(path)
            (case / "sessions.tsv").write_text("session_id\tacq_time\nses-1\t2020-01-01\n")
            start = time.perf_counter()
            try:
                result = process_case(scan_case(case))
            except Exception as error:  # report, do not stop: every FLAIR gets its row
                lines.append(f"| {name} | | | | | | {type(error).__name__}: {error} |")
                continue
            seconds = time.perf_counter() - start
            images = result.sessions[0]
            assert images.flair is not None and images.flair_brain is not None
            assert images.flair_result is not None
            brain = np.asarray(images.flair_brain.data) > 0
            voxel = images.flair.voxel_volume_mm3
            lesion = images.flair_result
            lines.append(
                f"| {name} | {images.flair.shape} | "
                f"{' x '.join(f'{s:.2f}' for s in images.flair.spacing_mm)} | "
                f"{mm3_to_ml(brain.sum() * voxel):.0f} | {lesion.volume_ml:.2f} "
                f"({lesion.n_lesions}) | {seconds:.0f} | ok |"
            )
            if args.png:
                save_overlay(
                    np.asarray(images.flair.data, dtype=np.float32),
                    brain,
                    np.asarray(lesion.lesion_mask.data) > 0,
                    REPO / "docs" / "validation" / f"native_{name}.png",
                )
        print(lines[-1], file=sys.stderr, flush=True)
    out = "\n".join(lines)
    print(out)
    if args.out:
        args.out.write_text(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
