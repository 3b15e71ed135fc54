"""The synthetic MS FLAIR generator (synthetic.ms_flair): truth, graded lesions, decoys and noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from synthetic.fields import rng_for
from synthetic.ms_flair import make_ms_flair, with_extra_noise, with_symmetric_decoys

#: The 1 mm MNI grid of the expert masks (182 x 218 x 182), cropped in z to keep the test small.
AFFINE = np.array(
    [[-1.0, 0, 0, 90], [0, 1.0, 0, -126], [0, 0, 1.0, -72], [0, 0, 0, 1]], dtype=np.float64
)


@pytest.fixture(scope="module")
def ball_mask() -> np.ndarray:
    """A 7 mm-radius lesion in the left centrum semiovale (MNI about (-25, -10, 30))."""
    shape = (182, 218, 182)
    ijk = np.indices(shape, dtype=np.float32)
    centre = np.linalg.solve(AFFINE, [-25.0, -10.0, 30.0, 1.0])[:3]
    distance2 = sum((ijk[a] - centre[a]) ** 2 for a in range(3))
    return np.asarray(distance2 <= 49.0)


def test_graded_lesions_fade_towards_the_rim_with_the_same_truth(ball_mask: np.ndarray) -> None:
    kwargs = {"seed": 3, "slice_mm": 1.0, "coarse": False}
    uniform = make_ms_flair(ball_mask, AFFINE, **kwargs)
    graded = make_ms_flair(ball_mask, AFFINE, graded_rim_mm=3.0, **kwargs)
    np.testing.assert_array_equal(uniform.truth.data, graded.truth.data)
    truth = np.asarray(graded.truth.data) > 0
    depth = ndi.distance_transform_edt(truth)
    core, rim = truth & (depth >= 4), truth & (depth <= 1)
    u, g = np.asarray(uniform.flair.data), np.asarray(graded.flair.data)
    # the core is as bright as the uniform lesion; the rim holds about half its contrast
    assert np.median(g[core]) == pytest.approx(np.median(u[core]), rel=0.02)
    level = float(np.median(u[np.asarray(uniform.brain.data) > 0]))
    assert np.median(g[rim]) - level < 0.8 * (np.median(u[rim]) - level)


def test_decoys_and_noise_leave_the_truth_and_the_background_alone(ball_mask: np.ndarray) -> None:
    case = make_ms_flair(ball_mask, AFFINE, seed=5, slice_mm=1.0, coarse=False)
    rng = rng_for(5, "test")
    flair = with_symmetric_decoys(case.flair, case.brain, case.to_mni, rng)
    flair = with_extra_noise(flair, case.brain, case.contrast, rng)
    outside = np.asarray(case.brain.data) == 0
    assert np.all(np.asarray(flair.data)[outside] == 0)
    brighter = np.asarray(flair.data) - np.asarray(case.flair.data)
    assert brighter[~outside].std() > 0  # something was added inside the brain
