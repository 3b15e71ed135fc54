"""Compare parameter variants of the local-contrast FLAIR method on a development set.

The development set is kept apart from what README reports: synthetic FLAIRs
(:func:`synthetic.ms_flair.make_ms_flair`, seeds 700 + i) around the expert masks that are neither in
the validation cohort (``benchmarks/flair_cohort.COHORT``) nor patient07, with uniform and graded
lesions (``--graded-rim-mm``), plus one lesion-free control per lesion profile. A variant is a set of
:class:`imaging.segment.FlairLesionParams` overrides (``--set name=value``, repeatable). Decide on
this set, then measure once on the cohort (``validate_flair_engines.py``).

Usage: ``python benchmarks/flair_param_variants.py [--cases N] [--graded-rim-mm 0,2]
[--set grow_distance_mm=0 ...]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flair_cohort import COHORT, VALIDATION, load_masks, realdata_root  # noqa: E402
from validate_flair_engines import inputs_for  # noqa: E402

from imaging.engines.builtin import BuiltinFlairEngine  # noqa: E402
from imaging.lesion_prior import build_lesion_frequency, mni_map_on  # noqa: E402
from imaging.metrics import evaluate_segmentation  # noqa: E402
from imaging.segment import FlairLesionParams  # noqa: E402
from synthetic.ms_flair import make_ms_flair  # noqa: E402


def overrides(pairs: list[str]) -> dict[str, object]:
    """``name=value`` pairs, values parsed as JSON (numbers, true/false) or kept as text."""
    out: dict[str, object] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            out[name] = text
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--graded-rim-mm", default="0,2", help="comma-separated rims, mm")
    parser.add_argument("--set", action="append", default=[], help="parameter=value")
    args = parser.parse_args(argv)
    masks, affine = load_masks(realdata_root() / "open_ms_masks_mni")
    names = sorted(n for n in masks if n not in COHORT and n != VALIDATION)[: args.cases]
    engine = BuiltinFlairEngine(FlairLesionParams(**overrides(args.set)))  # type: ignore[arg-type]
    print(f"variant: {args.set or 'defaults'}; cases: {', '.join(names)}")
    for rim in (float(r) for r in args.graded_rim_mm.split(",")):
        errors, dices, control_ml = [], [], 0.0
        # the lesional cases (seeds 700 + i), then the lesion-free control (seed 799)
        for i, name in enumerate([*names, None]):
            seed = 700 + i if name is not None else 799
            truth = masks[name] if name is not None else None
            case = make_ms_flair(truth, affine, seed=seed, graded_rim_mm=rim)
            others = [m for k, m in masks.items() if k != name]
            prior = mni_map_on(build_lesion_frequency(others, affine), case.flair, case.to_mni)
            mask = engine.segment(
                inputs_for(case.flair, case.brain, case.to_mni, prior)
            ).lesion_mask
            m = evaluate_segmentation(case.truth, mask)
            if name is None:
                control_ml = m.volume_pred_ml
                continue
            errors.append(100 * (m.volume_pred_ml - m.volume_ref_ml) / m.volume_ref_ml)
            dices.append(m.dice)
            print(
                f"rim {rim:g} mm {name}: slice {case.contrast['slice_mm']:g} mm, true "
                f"{m.volume_ref_ml:.2f} mL, found {m.volume_pred_ml:.2f} mL ({errors[-1]:+.1f} %), "
                f"Dice {m.dice:.3f}",
                flush=True,
            )
        print(
            f"== rim {rim:g} mm: median volume error {statistics.median(errors):+.1f} % (abs "
            f"{statistics.median(map(abs, errors)):.1f} %), median Dice "
            f"{statistics.median(dices):.3f}, control {control_ml:.2f} mL",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
