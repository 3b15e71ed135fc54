"""The segmentation seam: engines by name, a third-party engine through an entry point, what is
recorded about the engine (provenance, batch fingerprint, DICOM SEG, report), and the contract check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from imaging.engines import (
    BUILTIN_DWI,
    BUILTIN_FLAIR,
    EngineError,
    EngineInfo,
    FlairEngine,
    LesionMap,
    available_engines,
    dwi_engine,
    flair_engine,
)
from imaging.image import MRImage
from imaging.pipeline import PipelineParams, engine_infos, parse_engine_choice
from imaging.template import mni_template

BOX_ENGINE = '''
"""A third-party FLAIR engine for the tests: a 10 mm ball around a world point, inside the brain."""
import hashlib
from pathlib import Path

import numpy as np

from imaging.engines import EngineInfo, LesionMap

WEIGHTS = Path(__file__).with_name("ball_weights.bin")
CENTRE_MM = (-20.0, -30.0, 25.0)


class BallEngine:
    @property
    def info(self):
        return EngineInfo(
            name="ball",
            version="0.3",
            source="flair",
            parameters={"radius_mm": 10.0, "centre_mm": list(CENTRE_MM)},
            model_sha256={WEIGHTS.name: hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()},
            method="a ball of 10 mm radius (test engine)",
            dicom_family="ArtificialIntelligence",
        )

    def segment(self, inputs):
        flair = inputs.flair
        ijk = np.indices(flair.spatial_shape).reshape(3, -1).T
        xyz = flair.voxel_to_world_mm(ijk).reshape(*flair.spatial_shape, 3)
        ball = np.linalg.norm(xyz - np.array(CENTRE_MM), axis=-1) <= 10.0
        mask = ball & (np.asarray(inputs.brain_mask.data) > 0)
        return LesionMap(lesion_mask=flair.with_data(mask.astype(np.uint8), sequence="OTHER"),
                         details={"voxels": int(mask.sum())})


class OffGridEngine(BallEngine):
    def segment(self, inputs):
        flair = inputs.flair
        return LesionMap(lesion_mask=MRImage(np.zeros((3, 4, 5), np.uint8), flair.affine))


class T1ProbeEngine(BallEngine):
    """Uses the T1: reports what it received (grid, and the T1 itself for the test to compare)."""

    received = {}

    @property
    def info(self):
        return EngineInfo(name="t1-probe", version="1", source="flair", uses_t1=True)

    def segment(self, inputs):
        T1ProbeEngine.received["t1"] = inputs.t1
        empty = np.zeros(inputs.flair.spatial_shape, np.uint8)
        return LesionMap(lesion_mask=inputs.flair.with_data(empty, sequence="OTHER"))


def make(options):
    return BallEngine()


def make_t1_probe(options):
    return T1ProbeEngine()


def make_off_grid(options):
    return OffGridEngine()


from imaging.image import MRImage  # noqa: E402
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder on sys.path holding a module and its dist-info with two engine entry points."""
    site = tmp_path_factory.mktemp("site")
    (site / "ball_engine.py").write_text(BOX_ENGINE)
    (site / "ball_weights.bin").write_bytes(b"not really weights, but hashed like them")
    info = site / "ball_engine-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ball-engine\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(
        "[leukotrack.flair_engines]\n"
        "ball = ball_engine:make\n"
        "off-grid = ball_engine:make_off_grid\n"
        "t1-probe = ball_engine:make_t1_probe\n"
    )
    return site


@pytest.fixture
def with_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(plugin_site))
    return plugin_site


def _mni_case(root: Path) -> Path:
    """A one-session NIfTI case: a FLAIR-like image from the MNI template at 2 x 2.5 x 3 mm
    (white matter darker than grey matter, CSF dark), in an RAS grid that is not the template's."""
    template = mni_template()
    case = root / "case"
    anat = case / "ses-01" / "anat"
    anat.mkdir(parents=True)
    gm = np.asarray(template.gm.data)
    wm = np.asarray(template.wm.data)
    brain = np.asarray(template.brain.data) >= 0.5
    image = np.where(brain, 400 * wm + 600 * gm + 80, 0).astype(np.float32)
    image = ndi.zoom(image, (1.0, 0.8, 2 / 3), order=1)
    affine = template.t1.affine.copy()
    affine[:3, :3] = np.diag([2.0, 2.5, 3.0])
    image += np.random.default_rng(3).normal(0, 5, image.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(np.clip(image, 0, None), affine), anat / "sub-x_ses-01_FLAIR.nii.gz")
    (case / "sessions.tsv").write_text("session_id\tacq_time\nses-01\t2024-03-01\n")
    return case


def test_builtin_engines_are_listed_and_chosen_by_name():
    engines = available_engines()
    assert BUILTIN_FLAIR in engines["flair"] and BUILTIN_DWI in engines["dwi"]
    assert isinstance(flair_engine(BUILTIN_FLAIR), FlairEngine)
    assert dwi_engine(BUILTIN_DWI).info.source == "dwi"
    assert parse_engine_choice([BUILTIN_FLAIR, f"dwi={BUILTIN_DWI}"]) == {
        "flair": BUILTIN_FLAIR,
        "dwi": BUILTIN_DWI,
    }
    with pytest.raises(EngineError, match="choose one of"):
        parse_engine_choice(["flair=nonesuch"])
    with pytest.raises(EngineError, match="flair or dwi"):
        parse_engine_choice(["t2=whatever"])
    with pytest.raises(EngineError, match="no FLAIR engine"):
        flair_engine("nonesuch")


def test_engine_info_carries_every_builtin_parameter():
    params = PipelineParams()
    infos = engine_infos(params)
    assert infos["flair"]["parameters"] == params.flair.to_dict()
    assert infos["dwi"]["parameters"] == params.dwi.to_dict()
    assert infos["flair"]["name"] == BUILTIN_FLAIR
    assert json.loads(json.dumps(infos)) == infos


def test_a_mask_off_the_input_grid_breaks_the_contract():
    like = MRImage(np.zeros((4, 5, 6), np.float32), np.diag([0.9, 1.1, 3.0, 1.0]))
    off = LesionMap(lesion_mask=MRImage(np.zeros((4, 5, 7), np.uint8), like.affine))
    with pytest.raises(EngineError, match="off the input grid"):
        off.checked(like, "x")
    not_binary = LesionMap(lesion_mask=like.with_data(np.full((4, 5, 6), 3, np.uint8)))
    with pytest.raises(EngineError, match="non-binary"):
        not_binary.checked(like, "x")
    good = LesionMap(lesion_mask=like.with_data(np.ones((4, 5, 6), np.uint8)))
    assert good.checked(like, "x").volume_ml == pytest.approx(4 * 5 * 6 * 0.9 * 1.1 * 3.0 / 1000)


def test_a_third_party_engine_is_found_through_its_entry_point(with_plugin: Path):
    assert "ball" in available_engines()["flair"]
    info = flair_engine("ball").info
    assert isinstance(info, EngineInfo) and info.version == "0.3"
    assert info.model_sha256["ball_weights.bin"] == (
        __import__("hashlib").sha256((with_plugin / "ball_weights.bin").read_bytes()).hexdigest()
    )


def test_the_engine_is_recorded_and_its_mask_is_the_result(with_plugin: Path, tmp_path: Path):
    """analyze with --engine ball: the FLAIR lesion mask is the engine's ball, on the FLAIR grid,
    and provenance, the batch fingerprint and the report's methods text name the engine."""
    from followup.analyze import analyze_case
    from followup.batch import case_fingerprint
    from followup.report import _engines_text

    case = _mni_case(tmp_path)
    out = tmp_path / "out"
    params = PipelineParams(flair_engine="ball")
    result = analyze_case(case, out, params=params)
    provenance = json.loads((result.folder / "provenance.json").read_text())
    assert provenance["engines"]["flair"]["name"] == "ball"
    assert provenance["engines"]["flair"]["version"] == "0.3"
    assert provenance["engines"]["flair"]["model_sha256"]["ball_weights.bin"]
    assert provenance["sessions"]["ses-01"]["engine_details"]["flair"]["voxels"] > 0
    anat = result.folder / "ses-01" / "anat"
    mask = nib.load(anat / "sub-case_ses-01_space-orig_desc-flairlesion_mask.nii.gz")
    flair = nib.load(case / "ses-01" / "anat" / "sub-x_ses-01_FLAIR.nii.gz")
    np.testing.assert_allclose(mask.affine, flair.affine, atol=1e-5)
    data = np.asarray(mask.dataobj) > 0
    ijk = np.indices(data.shape).reshape(3, -1).T
    xyz = (flair.affine[:3, :3] @ ijk.T).T + flair.affine[:3, 3]
    distance_mm = np.linalg.norm(xyz - np.array([-20.0, -30.0, 25.0]), axis=1)
    ball = (distance_mm <= 10.0).reshape(data.shape)
    assert data.any() and not (data & ~ball).any()  # only inside the ball
    assert data.sum() > 0.8 * ball.sum()  # the ball lies inside the brain
    volume_ml = float(data.sum()) * 2.0 * 2.5 * 3.0 / 1000
    assert result.sessions[0]["flair_lesion_volume_ml"] == pytest.approx(volume_ml, abs=1e-3)
    # a new engine version or model file is another analysis: the batch fingerprint changes
    builtin = case_fingerprint(case, params=PipelineParams())
    assert case_fingerprint(case, params=params) != builtin
    assert "ball" in _engines_text(provenance) and "0.3" in _engines_text(provenance)


def test_an_engine_that_breaks_the_contract_is_a_named_error(with_plugin: Path, tmp_path: Path):
    from followup.analyze import analyze_case

    case = _mni_case(tmp_path)
    with pytest.raises(EngineError, match="off the input grid"):
        analyze_case(case, tmp_path / "out", params=PipelineParams(flair_engine="off-grid"))
    assert not (tmp_path / "out" / "sub-case").exists()


def test_cli_engine_option_and_listing(plugin_site: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), *sys.path])}
    exe = [str(Path(sys.executable).with_name("leukotrack"))]
    listing = subprocess.run([*exe, "engines"], capture_output=True, text=True, env=env, check=True)
    assert "ball" in listing.stdout and BUILTIN_FLAIR in listing.stdout
    bad = subprocess.run(
        [*exe, "analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--engine", "flair=nope"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1
    assert "EngineError" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "o").exists()


STAND_IN = '''#!{python}
"""A stand-in for run_samseg with SAMSEG's command line and output files (not its maths): the
lesion posterior is 0.8 where the FLAIR is above twice its median, written in another voxel
order than the input (as SAMSEG writes conformed outputs)."""
import argparse, json, sys
from pathlib import Path
import nibabel as nib
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("-o", dest="out", required=True)
parser.add_argument("-i", dest="inputs", action="append", required=True)
parser.add_argument("--lesion", action="store_true")
parser.add_argument("--pallidum-separate", action="store_true")
parser.add_argument("--lesion-mask-pattern", nargs="+", type=int)
parser.add_argument("--threshold", type=float)
parser.add_argument("--threads", type=int)
parser.add_argument("--save-posteriors", nargs="*")
args = parser.parse_args()
out = Path(args.out); (out / "posteriors").mkdir(parents=True)
(out / "args.json").write_text(json.dumps(vars(args)))
flair = nib.load(args.inputs[0])
data = np.asarray(flair.dataobj, dtype=np.float32)[::-1, ::-1, :]  # written in LPS order
flip = np.diag([-1.0, -1.0, 1.0, 1.0])
flip[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
affine = flair.affine @ flip
posterior = np.where(data > 2 * np.median(data), 0.8, 0.0).astype(np.float32)
nib.save(nib.MGHImage(posterior, affine), out / "posteriors" / "Lesions.mgz")
seg = np.where(posterior >= args.threshold, 99, 2).astype(np.int32)
nib.save(nib.MGHImage(seg, affine), out / "seg.mgz")
print(json.dumps(vars(args)), file=sys.stderr)
'''


def test_samseg_engine_is_a_named_error_until_installed(monkeypatch, tmp_path):
    from imaging.engines import FlairInputs
    from imaging.engines.samseg import SamsegFlairEngine

    monkeypatch.setenv("LEUKOTRACK_SAMSEG", str(tmp_path / "missing" / "run_samseg"))
    flair = MRImage(np.ones((6, 7, 8), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    inputs = FlairInputs(flair, flair.with_data(np.ones((6, 7, 8), np.uint8)), flair)
    with pytest.raises(EngineError, match="LEUKOTRACK_SAMSEG"):
        SamsegFlairEngine().segment(inputs)


def test_samseg_engine_calls_samseg_and_reads_its_outputs_onto_the_flair_grid(
    monkeypatch, tmp_path
):
    """The adapter's side of the contract, with a stand-in executable that has SAMSEG's command line
    and output files (the real SAMSEG runs in tests/test_engines.py::test_real_samseg when
    LEUKOTRACK_SAMSEG is set)."""
    from imaging.engines import FlairInputs
    from imaging.engines.samseg import SamsegFlairEngine

    exe = tmp_path / "run_samseg"
    exe.write_text(STAND_IN.replace("{python}", sys.executable))
    exe.chmod(0o755)
    monkeypatch.setenv("LEUKOTRACK_SAMSEG", str(exe))
    rng = np.random.default_rng(0)
    data = rng.normal(100, 5, (20, 14, 10)).astype(np.float32)
    data[8:12, 6:10, 4:8] = 300  # bright block: even indices keep it at half resolution
    affine = np.array([[0.9, 0, 0, -9], [0, 1.2, 0, -8], [0, 0, 3.0, -15], [0, 0, 0, 1]])
    flair = MRImage(data, affine)
    t1 = flair.with_data(rng.normal(50, 5, data.shape).astype(np.float32))
    inputs = FlairInputs(flair, flair.with_data(np.ones(data.shape, np.uint8)), flair, t1=t1)
    result = SamsegFlairEngine(threshold=0.5).segment(inputs).checked(flair, "samseg")
    mask = np.asarray(result.lesion_mask.data) > 0
    assert mask[8:12, 6:10, 4:8].all()  # the block, back on the FLAIR's voxel order
    assert mask.sum() == 4 * 4 * 4
    assert result.probability is not None
    assert float(np.asarray(result.probability.data)[9, 7, 5]) == pytest.approx(0.8)


@pytest.mark.skipif(not os.environ.get("LEUKOTRACK_SAMSEG"), reason="SAMSEG is not installed")
@pytest.mark.realdata
def test_real_samseg_on_patient07(realdata: Path):
    from imaging.engines import FlairInputs
    from imaging.engines.samseg import SamsegFlairEngine
    from imaging.metrics import evaluate_segmentation

    folder = realdata / "open_ms_patient07"
    flair = MRImage.from_nifti(nib.load(folder / "FLAIR.nii.gz"))
    t1 = MRImage.from_nifti(nib.load(folder / "T1.nii.gz"))
    brain = flair.with_data((np.asarray(flair.data) > 0).astype(np.uint8))
    result = SamsegFlairEngine(threads=2).segment(FlairInputs(flair, brain, brain, t1=t1))
    truth = MRImage.from_nifti(nib.load(folder / "lesion_mask.nii.gz"))
    assert evaluate_segmentation(truth, result.lesion_mask).dice >= 0.45


def test_a_t1_is_registered_to_the_flair_and_handed_to_engines_that_use_it(
    with_plugin: Path, tmp_path: Path
):
    """The session's T1w (another grid, the head 4 mm to the left) reaches the engine on the FLAIR
    grid and aligned with it; an engine without uses_t1 never costs the registration."""
    import ball_engine  # type: ignore[import-not-found]

    from followup.analyze import analyze_case
    from imaging.register import resample

    case = _mni_case(tmp_path)
    template = mni_template()
    t1 = template.t1
    shifted = t1.affine.copy()
    shifted[0, 3] -= 4.0  # the same voxels 4 mm further left: the head moved between sequences
    anat = case / "ses-01" / "anat"
    data = ndi.zoom(np.asarray(t1.data, np.float32), 4 / 3, order=1) * 1000
    affine = shifted.copy()
    affine[:3, :3] = shifted[:3, :3] * 0.75  # 1.5 mm voxels
    nib.save(nib.Nifti1Image(data, affine), anat / "sub-x_ses-01_T1w.nii.gz")
    result = analyze_case(case, tmp_path / "out", params=PipelineParams(flair_engine="t1-probe"))
    provenance = json.loads((result.folder / "provenance.json").read_text())
    session = provenance["sessions"]["ses-01"]
    assert session["sources"]["t1"].endswith("sub-x_ses-01_T1w.nii.gz")
    moved = np.asarray(session["registrations"]["t1_to_flair"]["matrix_ras_mm"])
    assert moved[0, 3] == pytest.approx(-4.0, abs=1.0)  # FLAIR world -> T1 world: 4 mm left
    received = ball_engine.T1ProbeEngine.received["t1"]
    flair = MRImage.from_nifti(nib.load(anat / "sub-x_ses-01_FLAIR.nii.gz"))
    assert received.same_grid(flair)
    expected = np.asarray(resample(t1, flair, np.eye(4)).data)
    brain = expected > 0.2
    r = np.corrcoef(np.asarray(received.data)[brain], expected[brain])[0, 1]
    assert r > 0.9
    # without the registration it would be 4 mm off: the correlation drops clearly
    off = np.asarray(resample(t1, flair, _translation(4.0)).data)
    assert np.corrcoef(off[brain], expected[brain])[0, 1] < r - 0.05
    # the built-in engine does not read the T1: no registration is spent on it
    other = analyze_case(case, tmp_path / "out2")
    plain = json.loads((other.folder / "provenance.json").read_text())["sessions"]["ses-01"]
    assert "t1_to_flair" not in plain["registrations"]


def _translation(x_mm: float) -> np.ndarray:
    matrix = np.eye(4)
    matrix[0, 3] = x_mm
    return matrix
