"""Train the FLAIR voxel classifier of the ``voxel-classifier`` engine (LightGBM, CPU, about 15 min).

Training data are synthetic FLAIRs only (:func:`synthetic.ms_flair.make_ms_flair`): the MNI152 2009a
anatomy under a random affine and a smooth random warp, with the consensus expert lesion masks of
other MS patients (``open_ms_masks_mni``) as lesions, randomised contrast (grey / white ratio
0.95-1.35, lesion 1.2-1.6 x tissue), texture, bias, noise, 1 mm 3D or 3-4 mm 2D slices and
quantisation. Which masks train and which are left for validation:

* patient07 (the real validation FLAIR) is never used;
* the 12 masks of the synthetic validation cohort (``benchmarks/flair_cohort.COHORT``) are never
  used, so that cohort scores shapes the classifier has not seen;
* the other 15 masks train, each several times (other seeds, half of them mirrored left-right).

The classifier sees the priors a real session gets: the template WM / GM maps through the case's
affine pose perturbed by a random registration error (2 mm, 2 degrees), and a lesion-frequency prior
built from the other training masks (never the case's own). Each volume gives all its lesion voxels
(at most 40 000) and 80 000 others, half of them hard (bright, or next to a lesion). The probability
threshold is then chosen for the best median Dice on whole volumes of separate calibration cases
(training masks, new seeds), and the smallest lesion kept is fixed at 3 mm3.

Writes ``imaging/data/flair_voxel_classifier.txt`` (LightGBM text model) and
``imaging/data/flair_voxel_classifier.json`` (feature names, threshold, training record).

Usage: ``python scripts/train_flair_classifier.py [--repeats 3] [--calibration 6] [--jobs 2]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from flair_cohort import COHORT, VALIDATION, load_masks, realdata_root  # noqa: E402

from imaging.image import MRImage  # noqa: E402
from imaging.lesion_classifier import lesions_from_probability  # noqa: E402
from imaging.lesion_features import FEATURE_NAMES, flair_features  # noqa: E402
from imaging.lesion_prior import build_lesion_frequency, mni_map_on  # noqa: E402
from imaging.metrics import dice  # noqa: E402
from imaging.template import mni_template  # noqa: E402
from synthetic.fields import rng_for  # noqa: E402
from synthetic.ms_flair import (  # noqa: E402
    make_ms_flair,
    rotation_xyz,
    with_extra_noise,
    with_symmetric_decoys,
)

MODEL = REPO / "imaging" / "data" / "flair_voxel_classifier.txt"
META = REPO / "imaging" / "data" / "flair_voxel_classifier.json"
MAX_POSITIVE = 40_000
N_NEGATIVE = 80_000
SEED_BASE = 7000

_MASKS: dict[str, np.ndarray] = {}
_AFFINE = np.eye(4)


def _init(names: list[str]) -> None:
    global _AFFINE
    masks, affine = load_masks(realdata_root() / "open_ms_masks_mni")
    _MASKS.update({k: v for k, v in masks.items() if k in names})
    _AFFINE = affine


def perturbed(to_mni: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``to_mni`` with a random registration error (about 2 mm and 2 degrees)."""
    rot = rotation_xyz(np.deg2rad(rng.normal(0.0, 2.0, 3)))
    error = np.eye(4)
    error[:3, :3] = rot * rng.uniform(0.97, 1.03)
    error[:3, 3] = rng.normal(0.0, 2.0, 3)
    return np.asarray(error @ to_mni)


def make_volume(name: str | None, seed: int, flip: bool) -> dict[str, Any]:
    """One synthetic FLAIR with the inputs a session would give the engine, and its truth."""
    rng = rng_for(seed, "train_flair_classifier")
    mask = None if name is None else _MASKS[name]
    if mask is not None and flip:
        mask = mask[::-1]
    others = [m for k, m in _MASKS.items() if k != name]
    case = make_ms_flair(mask, _AFFINE, seed=seed)
    flair = with_symmetric_decoys(case.flair, case.brain, case.to_mni, rng)
    flair = with_extra_noise(flair, case.brain, case.contrast, rng)
    pose = perturbed(case.to_mni, rng)
    template = mni_template()
    wm = mni_map_on(template.wm, case.flair, pose)
    gm = mni_map_on(template.gm, case.flair, pose)
    prior = mni_map_on(build_lesion_frequency(others, _AFFINE), case.flair, pose)
    features = flair_features(flair, case.brain, wm, gm, prior, pose)
    truth = np.asarray(case.truth.data, bool)[features.box][features.inside]
    return {"features": features, "truth": truth, "flair": flair, "contrast": case.contrast}


def sample_rows(task: tuple[str | None, int, bool]) -> tuple[np.ndarray, np.ndarray]:
    """Training rows of one volume: lesion voxels and easy plus hard others."""
    name, seed, flip = task
    volume = make_volume(name, seed, flip)
    values, truth = volume["features"].values, volume["truth"]
    rng = np.random.default_rng(seed)
    positive = np.flatnonzero(truth)
    if positive.size > MAX_POSITIVE:
        positive = rng.choice(positive, MAX_POSITIVE, replace=False)
    negative = np.flatnonzero(~truth)
    column = FEATURE_NAMES.index("local8_wm")
    hard = negative[values[negative, column] > 0.04]
    n_hard = min(hard.size, N_NEGATIVE // 2)
    chosen = [rng.choice(hard, n_hard, replace=False)] if n_hard else []
    chosen.append(rng.choice(negative, N_NEGATIVE - n_hard, replace=False))
    rows = np.concatenate([positive, *chosen])
    labels = np.concatenate([np.ones(positive.size), np.zeros(rows.size - positive.size)])
    print(f"  {name} seed {seed}: {positive.size} lesion rows", file=sys.stderr, flush=True)
    return values[rows], labels.astype(np.float32)


def calibration_probabilities(
    task: tuple[str | None, int, bool], model_text: str
) -> dict[str, Any]:
    """Whole-volume probabilities of one calibration case, with its truth."""
    import lightgbm as lgb

    name, seed, flip = task
    volume = make_volume(name, seed, flip)
    booster = lgb.Booster(model_str=model_text)
    probability = booster.predict(volume["features"].values, num_threads=1)
    return {
        "probability": np.asarray(probability, np.float32),
        "truth": volume["truth"],
        "features": volume["features"],
        "flair": volume["flair"],
    }


def main(argv: list[str] | None = None) -> int:
    import lightgbm as lgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="volumes per training mask")
    parser.add_argument("--calibration", type=int, default=6, help="calibration volumes")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--rows", type=Path, help="cache of the training rows (.npz), reused if present"
    )
    args = parser.parse_args(argv)
    folder = realdata_root() / "open_ms_masks_mni"
    if not folder.is_dir():
        print(f"cannot train: {folder} not found (set LEUKOTRACK_REALDATA)", file=sys.stderr)
        return 2
    masks, _ = load_masks(folder)
    train_names = sorted(n for n in masks if n not in COHORT and n != VALIDATION)
    start = time.time()
    tasks: list[tuple[str | None, int, bool]] = []
    for r in range(args.repeats):
        for i, name in enumerate(train_names):
            tasks.append((name, SEED_BASE + 100 * r + i, bool((r + i) % 2)))
    tasks += [(None, SEED_BASE + 900 + r, False) for r in range(2)]  # lesion-free controls
    # spawned workers: LightGBM's OpenMP runtime does not survive a fork
    context = multiprocessing.get_context("spawn")
    if args.rows and args.rows.is_file():
        cached = np.load(args.rows)
        x, y = cached["x"], cached["y"]
    else:
        with ProcessPoolExecutor(
            args.jobs, mp_context=context, initializer=_init, initargs=(train_names,)
        ) as pool:
            parts = list(pool.map(sample_rows, tasks))
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        if args.rows:
            np.savez(args.rows, x=x, y=y)
    print(f"{x.shape[0]} rows ({int(y.sum())} lesion) from {len(tasks)} volumes", file=sys.stderr)
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 200,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": args.jobs,
        "seed": 13,
        "verbose": -1,
        "deterministic": True,
        "force_row_wise": True,
    }
    n_rounds = 200
    booster = lgb.train(
        params, lgb.Dataset(x, y, feature_name=list(FEATURE_NAMES)), num_boost_round=n_rounds
    )
    model_text = booster.model_to_string()
    MODEL.write_text(model_text)
    # the threshold: best median Dice on whole calibration volumes (training masks, new seeds)
    calibration = [
        (train_names[(3 * k) % len(train_names)], SEED_BASE + 5000 + k, bool(k % 2))
        for k in range(args.calibration)
    ]
    with ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=_init, initargs=(train_names,)
    ) as pool:
        volumes = list(
            pool.map(calibration_probabilities, calibration, [model_text] * len(calibration))
        )
    thresholds = np.round(np.arange(0.2, 0.91, 0.05), 2)
    medians = [float(np.median([dice_at(v, t) for v in volumes])) for t in thresholds]
    best = float(thresholds[int(np.argmax(medians))])
    print(
        "calibration median Dice: "
        + ", ".join(f"{t:.2f}: {m:.3f}" for t, m in zip(thresholds, medians, strict=True)),
        file=sys.stderr,
    )
    importance = booster.feature_importance("gain")
    META.write_text(
        json.dumps(
            {
                "features": list(FEATURE_NAMES),
                "threshold": best,
                "min_lesion_mm3": MIN_LESION_MM3,
                "smooth_mm": SMOOTH_MM,
                "candidate_min_smooth1_wm": CANDIDATE_MIN,
                "rounds": n_rounds,
                "params": params,
                "training_masks": train_names,
                "training_volumes": len(tasks),
                "training_rows": int(x.shape[0]),
                "training_lesion_rows": int(y.sum()),
                "calibration_median_dice": dict(
                    zip(
                        [f"{t:.2f}" for t in thresholds],
                        [round(m, 4) for m in medians],
                        strict=True,
                    )
                ),
                "feature_gain": {
                    n: round(float(g), 1) for n, g in zip(FEATURE_NAMES, importance, strict=True)
                },
                "lightgbm": lgb.__version__,
                "command": "python scripts/train_flair_classifier.py "
                + " ".join(argv or sys.argv[1:]),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"threshold {best:.2f}; wrote {MODEL} in {time.time() - start:.0f} s", file=sys.stderr)
    return 0


MIN_LESION_MM3 = 3.0
#: The probability map is smoothed (Gaussian, mm, inside the brain) before the threshold: a lesion
#: is a blob, not a voxel.
SMOOTH_MM = 1.0
#: Voxels darker than this (1 mm-smoothed, x WM level) are not lesion candidates: not scored.
CANDIDATE_MIN = 0.95


def dice_at(volume: dict[str, Any], threshold: float) -> float:
    """Dice of one calibration volume at ``threshold`` (decided as the engine decides)."""

    features = volume["features"]
    flair: MRImage = volume["flair"]
    mask = lesions_from_probability(
        features, volume["probability"], flair, threshold, SMOOTH_MM, CANDIDATE_MIN, MIN_LESION_MM3
    )
    truth = features.to_volume(volume["truth"], flair.spatial_shape, False)
    return float(dice(truth, mask))


if __name__ == "__main__":
    raise SystemExit(main())
