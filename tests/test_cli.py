"""The command line: inspect, convert and their errors, run as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from followup.cli import app
from imaging.dicom import load_series_folder
from imaging.nifti import load_nifti
from tests.dicom_factory import Phantom, phantom_volume

runner = CliRunner()


def _dwi_series(folder: Path) -> Phantom:
    phantom = Phantom(
        data=phantom_volume((7, 8, 9, 2)),
        b_values=[0, 1000],
        headers={
            "ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW"],
            "SeriesDescription": "dwi",
        },
    )
    phantom.write(folder)
    return phantom


def test_convert_writes_nifti_bval_and_sidecar_that_read_back_identically(tmp_path):
    phantom = _dwi_series(tmp_path / "series")
    out = tmp_path / "out" / "dwi.nii.gz"
    result = runner.invoke(app, ["convert", str(tmp_path / "series"), str(out)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "dwi.bval").read_text().split() == ["0", "1000"]
    sidecar = json.loads((tmp_path / "out" / "dwi.json").read_text())
    assert sidecar["LeukotrackSequenceClass"] == "DWI"
    assert sidecar["EchoTime"] == pytest.approx(0.09)
    assert "PatientName" not in sidecar and "PatientID" not in sidecar
    back = load_nifti(out)  # the sidecar's class is found without a BIDS suffix
    original = load_series_folder(tmp_path / "series")
    np.testing.assert_array_equal(back.data, phantom.data)
    np.testing.assert_allclose(back.affine, original.affine, atol=1e-5)
    assert back.bvals_s_mm2 == (0.0, 1000.0)


def test_inspect_json_lists_sessions_and_series(tmp_path):
    _dwi_series(tmp_path / "case" / "a")
    result = runner.invoke(app, ["inspect", str(tmp_path / "case"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (case,) = report["cases"]
    (session,) = case["sessions"]
    assert session["session_id"] == "ses-20230314"
    assert session["has"] == ["DWI"]
    (series,) = session["series"]
    assert series["b_values"] == [0.0, 1000.0]
    assert series["shape"] == [7, 8, 9, 2]
    assert series["voxel_size_mm"] == [0.8, 0.9, 3.0]


def test_bad_input_exits_non_zero_with_one_readable_line(tmp_path):
    (tmp_path / "empty").mkdir()
    command = [
        sys.executable,
        "-m",
        "followup.cli",
        "convert",
        str(tmp_path / "empty"),
        str(tmp_path / "x.nii.gz"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "NoImagesFoundError" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) <= 3  # one message, possibly wrapped by the terminal width
    assert not (tmp_path / "x.nii.gz").exists()


def test_convert_refuses_a_folder_with_two_series(tmp_path):
    _dwi_series(tmp_path / "mixed")
    Phantom(data=phantom_volume((7, 8, 9)), headers={"SeriesNumber": 9}).write(
        tmp_path / "mixed", names="b{index}"
    )
    result = runner.invoke(app, ["convert", str(tmp_path / "mixed"), str(tmp_path / "x.nii.gz")])
    assert result.exit_code == 1
    assert "MixedSeriesError" in result.output
    assert not list(tmp_path.glob("x*"))


@pytest.mark.slow
def test_demo_keeps_unchanged_results_and_prints_the_course(analyzed_samples, tmp_path):
    out = tmp_path / "demo"
    shutil.copytree(analyzed_samples, out)
    result = runner.invoke(app, ["demo", "--no-serve", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "case indexcase: 5 sessions (dicom)" in result.output
    assert "indexcase: unchanged, kept" in result.output
    assert "cnsmyeloma: unchanged, kept" in result.output
    assert "lesion course" in result.output
    assert "research use only" in result.output


@pytest.mark.slow
def test_demo_opens_the_dashboard_on_the_sample_case(analyzed_samples, tmp_path):
    from tests.browser import free_port

    out = tmp_path / "demo"
    shutil.copytree(analyzed_samples, out)
    port = free_port()
    command = [sys.executable, "-m", "followup.cli", "demo", "--out", str(out), "--port", str(port)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the demo did not start the dashboard within 2 minutes")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as answer:
            assert answer.status == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    assert f"open http://127.0.0.1:{port}" in output
