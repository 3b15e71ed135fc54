"""Hostile and odd inputs to the image loader and the case folder (issue 14): each class ends in its
named error (or the right result), and nothing partial is left behind.

The inputs come from :mod:`tests.hostile.loader` (generated, small).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from followup.analyze import analyze_case, input_hashes
from followup.batch import FAILED, case_fingerprint, process_case_task
from followup.cli import app
from imaging.case import Patient, scan_case
from imaging.dicom import load_series_folder, scan_dicom
from imaging.errors import (
    DecompressionLimitError,
    ImageContentError,
    ImageTooLargeError,
    ImagingError,
    MissingSliceError,
    MixedPatientsError,
    NiftiLayoutError,
    NoImagesFoundError,
    TruncatedFileError,
    TruncatedNiftiError,
)
from imaging.limits import MAX_DECOMPRESSED_ENV, MAX_IMAGE_ENV
from imaging.nifti import load_nifti
from imaging.pipeline import PipelineParams, _load_session, process_case
from tests.dicom_factory import phantom_volume
from tests.hostile import loader as hostile

runner = CliRunner()
REPO = Path(__file__).parents[1]


def _nothing_written(out: Path) -> None:
    """No case folder, no hidden partial folder or file in an output folder."""
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [name for name in left if name.startswith(("sub-", ".sub-"))], left


# --- 1. two patients in one case ------------------------------------------------------------------


def test_studies_of_three_patients_are_refused_naming_each_patient(tmp_path):
    root = hostile.mixed_patients_dicom(tmp_path / "case")
    with pytest.raises(MixedPatientsError) as caught:
        scan_case(root)
    message = str(caught.value)
    assert "3 patients" in message and "--allow-mixed-patients" in message
    for k, patient_id in enumerate(hostile.MIXED_PATIENT_IDS):
        expected = Patient.from_fields(patient_id, f"DOE^PAT{k}", f"19{60 + k}0203")
        assert expected is not None and expected.describe() in message
        assert f"ses-2023031{k + 4}" in message
    assert "DOE" not in message  # the name itself is never printed, only its hash


def test_mixed_patients_pass_only_when_allowed_and_are_recorded(tmp_path):
    root = hostile.mixed_patients_dicom(tmp_path / "case")
    case = scan_case(root, allow_mixed_patients=True)
    assert case.mixed_patients_allowed
    assert len(case.sessions) == 3
    record = case.patients_record()
    assert [p["patient_id"] for p in record] == list(hostile.MIXED_PATIENT_IDS)
    assert [p["sessions"] for p in record] == [["ses-20230314"], ["ses-20230315"], ["ses-20230316"]]
    # the batch fingerprint differs, so a later run without the flag refuses the case again
    hashes = input_hashes(root)
    assert case_fingerprint(root, hashes) != case_fingerprint(
        root, hashes, allow_mixed_patients=True
    )


def test_batch_fails_a_mixed_case_by_name_and_writes_nothing(tmp_path):
    root = hostile.mixed_patients_dicom(tmp_path / "cases" / "p1")
    out = tmp_path / "out"
    outcome = process_case_task(str(root), str(out))
    assert outcome.status == FAILED
    assert outcome.error is not None and outcome.error.startswith("MixedPatientsError: ")
    _nothing_written(out)


def test_one_patient_with_and_without_birth_date_is_one_patient(tmp_path):
    root = tmp_path / "case"
    hostile.flair_phantom(
        headers={"PatientID": "77", "PatientName": "Doe^Jane", "PatientBirthDate": "19610203"}
    ).write(root / "s1")
    hostile.flair_phantom(
        headers={"PatientID": "77", "PatientName": "DOE^JANE^", "StudyDate": "20230320"}
    ).write(root / "s2")
    case = scan_case(root)
    assert len(case.sessions) == 2
    assert [p["birth_date"] for p in case.patients_record()] == ["19610203"]


def test_same_id_with_another_birth_date_is_another_patient(tmp_path):
    root = tmp_path / "case"
    hostile.flair_phantom(headers={"PatientID": "77", "PatientBirthDate": "19610203"}).write(
        root / "s1"
    )
    hostile.flair_phantom(
        headers={"PatientID": "77", "PatientBirthDate": "19700101", "StudyDate": "20230320"}
    ).write(root / "s2")
    with pytest.raises(MixedPatientsError, match="2 patients"):
        scan_case(root)


def test_nifti_sidecars_name_the_patient(tmp_path):
    root = hostile.bids_case(
        tmp_path / "case",
        sidecars={"ses-a": {"PatientID": "A1"}, "ses-b": {"PatientID": "B2"}},
    )
    with pytest.raises(MixedPatientsError, match=r"ID 'A1'.*ses-a.*ID 'B2'.*ses-b"):
        scan_case(root)
    assert len(scan_case(root, allow_mixed_patients=True).sessions) == 2


def test_cli_inspect_shows_the_patients_and_analyze_refuses_them(tmp_path):
    root = hostile.mixed_patients_dicom(tmp_path / "case")
    result = runner.invoke(app, ["inspect", str(root), "--json"])
    assert result.exit_code == 0, result.output
    case = json.loads(result.stdout)["cases"][0]
    assert case["mixed_patients"] is True
    assert [s["patients"][0]["patient_id"] for s in case["sessions"]] == list(
        hostile.MIXED_PATIENT_IDS
    )
    table = runner.invoke(app, ["inspect", str(root)])
    assert table.exit_code == 0 and "3 patients in one case folder" in table.stdout
    assert "patient '12343@hucheng'" in table.stdout
    out = tmp_path / "out"
    refused = runner.invoke(app, ["analyze", str(root), "--out", str(out)])
    assert refused.exit_code == 1
    assert "MixedPatientsError" in refused.output and "Traceback" not in refused.output
    _nothing_written(out)


# --- 2. resource exhaustion -----------------------------------------------------------------------


def test_dicom_header_declaring_54_terabytes_is_refused_before_reading(tmp_path):
    path = hostile.huge_declared_dicom(tmp_path / "case" / "huge.dcm")
    with pytest.raises(ImageTooLargeError, match=f"30000x30000x30000 pixels.*{MAX_IMAGE_ENV}"):
        scan_dicom(path.parent)


def test_image_limit_is_configurable(tmp_path, monkeypatch):
    hostile.flair_phantom(shape=(64, 64, 4)).write(tmp_path / "s")  # 32 KB of int16 voxels
    monkeypatch.setenv(MAX_IMAGE_ENV, "0.01")  # about 10 KB: each file passes, the series not
    with pytest.raises(ImageTooLargeError, match="64x64x4 voxels"):
        load_series_folder(tmp_path / "s")
    (session,) = scan_case(tmp_path / "s").sessions  # headers fit; the series is refused
    with pytest.raises(ImageTooLargeError, match="64x64x4 voxels of 16 bits"):
        session.series[0].load()  # before any pixel data are read
    monkeypatch.setenv(MAX_IMAGE_ENV, "1")
    assert load_series_folder(tmp_path / "s").shape == (64, 64, 4)
    assert session.series[0].load().shape == (64, 64, 4)
    monkeypatch.setenv(MAX_IMAGE_ENV, "lots")
    with pytest.raises(ImagingError, match=f"{MAX_IMAGE_ENV}='lots' is not a positive number"):
        load_series_folder(tmp_path / "s")


def test_the_image_limit_counts_scaled_nifti_voxels_as_float32(tmp_path, monkeypatch):
    header = nib.Nifti1Header()
    header.set_data_shape((64, 64, 64))
    header.set_data_dtype(np.uint8)  # 256 KB stored
    header.set_slope_inter(2.0, 0.0)
    path = tmp_path / "scaled_FLAIR.nii"
    with path.open("wb") as handle:
        header.write_to(handle)
        handle.write(bytes(352 - handle.tell()) + np.ones(64**3, np.uint8).tobytes())
    monkeypatch.setenv(MAX_IMAGE_ENV, "0.5")  # 512 KB: the stored bytes fit, float32 (1 MB) not
    with pytest.raises(ImageTooLargeError, match=r"64x64x64 voxels of 32 bits \(scaled"):
        load_nifti(path)
    monkeypatch.setenv(MAX_IMAGE_ENV, "2")
    assert float(load_nifti(path).data.max()) == 2.0


def test_gzip_bomb_stops_where_its_header_says_the_image_ends(tmp_path):
    path = hostile.dicom_gz_bomb(tmp_path / "case" / "bomb.dcm.gz", expand_mb=50)
    assert path.stat().st_size < 200_000
    with pytest.raises(DecompressionLimitError, match=r"beyond the \d+ bytes its DICOM header"):
        scan_dicom(path.parent)


def test_gzip_cap_is_configurable(tmp_path, monkeypatch):
    # the header declares 4096x4096 pixels (32 MB): the cap, not the header, stops it
    path = hostile.dicom_gz_bomb(tmp_path / "case" / "bomb.dcm.gz", expand_mb=50, rows=4096)
    monkeypatch.setenv(MAX_DECOMPRESSED_ENV, "8")
    with pytest.raises(DecompressionLimitError, match=f"more than 8 MB.*{MAX_DECOMPRESSED_ENV}"):
        scan_dicom(path.parent)


def test_a_deflated_series_loads_exactly(tmp_path):
    phantom = hostile.deflated_series(tmp_path / "s")
    image = load_series_folder(tmp_path / "s")
    np.testing.assert_array_equal(image.data, phantom.data)
    np.testing.assert_allclose(image.affine, phantom.affine_ras(), atol=1e-4)


def test_a_deflate_bomb_stops_where_its_header_says_the_image_ends(tmp_path):
    path = hostile.deflate_bomb(tmp_path / "case" / "bomb.dcm", expand_mb=200)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(DecompressionLimitError, match=r"beyond the \d+ bytes its DICOM header"):
        scan_dicom(path.parent)


def test_nifti_header_declaring_30000_cubed_voxels_is_a_named_error(tmp_path):
    path = hostile.huge_declared_nifti(tmp_path / "huge_FLAIR.nii")
    with pytest.raises(ImageTooLargeError, match="30000x30000x30000 voxels of 32 bits"):
        load_nifti(path)
    case = hostile.bids_case(tmp_path / "case")
    target = case / "ses-a" / "anat" / "sub-x_ses-a_FLAIR.nii.gz"
    target.unlink()
    hostile.huge_declared_nifti(target.with_name("sub-x_ses-a_FLAIR.nii"))
    with pytest.raises(ImageTooLargeError):
        scan_case(case)


def test_nifti_gz_bomb_is_refused_from_its_header(tmp_path):
    path = hostile.nifti_gz_bomb(tmp_path / "bomb_FLAIR.nii.gz")
    with pytest.raises(ImageTooLargeError, match="2048x2048x2048 voxels of 8 bits"):
        load_nifti(path)


_MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from imaging.dicom import scan_dicom
    from imaging.errors import ImagingError
    try:
        scan_dicom(Path(sys.argv[1]))
        outcome = "no error"
    except ImagingError as error:
        outcome = type(error).__name__
    # VmHWM: this process image's own peak (ru_maxrss keeps the forking parent's peak across exec,
    # so under a big pytest process it would report the parent's size)
    status = Path("/proc/self/status").read_text().splitlines()
    hwm_kb = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), None)
    peak_kb = hwm_kb if hwm_kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(outcome, peak_kb // 1024)
    """
)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda folder: hostile.dicom_gz_bomb(folder / "b.dcm.gz", expand_mb=3000),
            "Decompression",
        ),
        (lambda folder: hostile.sparse_stray_file(folder / "stray.bin"), "NoImagesFoundError"),
    ],
    ids=["3 GB gzip bomb", "2 GiB stray file"],
)
def test_bombs_and_huge_stray_files_stay_far_below_their_size_in_memory(tmp_path, make, expected):
    folder = tmp_path / "case"
    folder.mkdir()
    make(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(MAX_DECOMPRESSED_ENV, None)
    env.pop(MAX_IMAGE_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    outcome, peak_mb = done.stdout.split()
    assert outcome.startswith(expected)
    assert int(peak_mb) < 1000  # generous: the input is 2-3 GB; a whole read would exceed it


# --- 3. silent wrong results ----------------------------------------------------------------------


def test_a_missing_flair_slice_stops_analyze_with_missing_slice_error(tmp_path):
    root = tmp_path / "case"
    hostile.flair_with_missing_slice(root / "flair")
    case = scan_case(root)  # indexing works; inspect shows the problem
    (entry,) = case.sessions[0].series
    assert entry.problem is not None and entry.problem.startswith("MissingSliceError")
    with pytest.raises(MissingSliceError, match=r"only FLAIR series cannot be used.*slice"):
        process_case(case)
    out = tmp_path / "out"
    with pytest.raises(MissingSliceError):
        analyze_case(root, out)
    _nothing_written(out)
    result = runner.invoke(app, ["analyze", str(root), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 1 and "MissingSliceError" in result.output
    _nothing_written(tmp_path / "out2")


def test_a_broken_flair_beside_a_good_one_is_noted_not_dropped_silently(tmp_path):
    root = tmp_path / "case"
    study = hostile.flair_phantom().study_uid
    good = hostile.flair_phantom(study_uid=study, headers={"SeriesNumber": 4})
    good.write(root / "good")
    broken = hostile.flair_phantom(study_uid=study, headers={"SeriesNumber": 9})
    hostile.flair_with_missing_slice(root / "broken", phantom=broken)
    session = scan_case(root).sessions[0]
    images = _load_session(session, PipelineParams())
    assert images.flair is not None
    np.testing.assert_array_equal(images.flair.data, good.data)
    assert any("not used" in note and "Error" in note for note in images.notes), images.notes


@pytest.mark.parametrize(
    ("size", "names"),
    [(0, "IM{index:05d}.dcm")]
    + [
        (size, names)
        for size in (100, 127, 131, 140, 150)
        for names in ("IM{index:05d}", "{index}.dcm")
    ],
)
def test_an_edge_slice_cut_to_a_few_bytes_is_truncated_not_skipped(tmp_path, size, names):
    root = tmp_path / "case"
    cut = hostile.cut_edge_slice(root, size, names=names)
    with pytest.raises(TruncatedFileError, match=cut.name):
        scan_case(root)


def test_an_empty_file_without_a_dicom_name_is_skipped_with_a_warning(tmp_path, caplog):
    cut = hostile.cut_edge_slice(tmp_path / "case", 0)
    with caplog.at_level(logging.WARNING):
        (session,) = scan_case(tmp_path / "case").sessions
    assert f"{cut}: empty file skipped" in caplog.text
    assert session.series[0].shape == (7, 8, 8)


@pytest.mark.parametrize("slope", ["NaN", "inf", "-Infinity"])
def test_a_nan_or_infinite_rescale_slope_is_a_named_error(tmp_path, slope):
    folder = hostile.rescale_slope(tmp_path / "flair", slope)
    with pytest.raises(ImageContentError, match="RescaleSlope"):
        load_series_folder(folder)


def test_nan_voxels_in_a_nifti_are_set_to_zero_with_a_warning_and_a_note(tmp_path, caplog):
    data = (phantom_volume((7, 8, 9)) + 1).astype(np.float32)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    root = hostile.bids_case(tmp_path / "case", flair=data)
    session = scan_case(root).sessions[0]
    with caplog.at_level(logging.WARNING):
        image = session.series[0].load()
    assert np.isfinite(image.data).all()
    assert image.data[0, 0, 0] == 0 and image.data[2, 2, 2] == data[2, 2, 2]
    (note,) = [n for n in image.acquisition.notes if "NaN" in n]
    assert note.startswith("4 of 504 voxels")
    assert "NaN or infinite" in caplog.text
    images = _load_session(session, PipelineParams())
    assert any(n.startswith("flair: 4 of 504 voxels") for n in images.notes)  # -> provenance


@pytest.mark.parametrize(
    ("flair", "match"),
    [
        (np.full((7, 8, 9), np.nan, np.float32), "every voxel is NaN"),
        (-(phantom_volume((7, 8, 9)).astype(np.float32) + 1), "mostly negative"),
        (np.zeros((7, 8, 9), np.float32), "holds no signal"),
    ],
    ids=["all NaN", "inverted", "all zero"],
)
def test_all_nan_inverted_or_empty_flair_is_refused(tmp_path, flair, match):
    root = hostile.bids_case(tmp_path / "case", flair=flair)
    with pytest.raises(ImageContentError, match=match):
        process_case(scan_case(root))
    out = tmp_path / "out"
    with pytest.raises(ImageContentError):
        analyze_case(root, out)
    _nothing_written(out)


# --- 4. symlinks ----------------------------------------------------------------------------------


def test_a_symlinked_dicom_study_is_read(tmp_path):
    case = hostile.symlinked_study(tmp_path / "case", tmp_path / "elsewhere")
    assert [s.label for s in scan_case(case).sessions] == ["ses-20230314", "ses-20230320"]


def test_a_symlink_loop_ends(tmp_path):
    case = tmp_path / "case"
    hostile.flair_phantom().write(case / "study")
    (case / "study" / "loop").symlink_to(case, target_is_directory=True)
    (case / "again").symlink_to(case / "study", target_is_directory=True)
    (session,) = scan_case(case).sessions
    assert session.series[0].shape == (7, 8, 9)


def test_the_fingerprint_follows_a_symlinked_session(tmp_path):
    outside = hostile.bids_case(tmp_path / "elsewhere")
    case = tmp_path / "case"
    case.mkdir()
    (case / "sessions.tsv").write_bytes((outside / "sessions.tsv").read_bytes())
    for label in ("ses-a", "ses-b"):
        (case / label).symlink_to(outside / label, target_is_directory=True)
    assert len(scan_case(case).sessions) == 2
    hashes = input_hashes(case)
    assert "ses-b/anat/sub-x_ses-b_FLAIR.nii.gz" in hashes
    before = case_fingerprint(case)
    sidecar = outside / "ses-b" / "anat" / "sub-x_ses-b_FLAIR.json"
    sidecar.write_text(sidecar.read_text().replace('"Modality"', '"Modality "'))
    assert case_fingerprint(case) != before


# --- 5. the NIfTI layout --------------------------------------------------------------------------

_TSV = "session_id\tacq_time\nses-a\t2023-03-14\nses-b\t2023-03-17\n"


@pytest.mark.parametrize(
    "encoded",
    [
        b"\xef\xbb\xbf" + _TSV.encode(),
        _TSV.encode("utf-16"),
        _TSV.replace("acq_time\n", "acq_time\tnote\n")
        .replace("14\n", "14\tbefore caf\xe9\n")
        .encode("latin-1"),
    ],
    ids=["UTF-8 BOM", "UTF-16", "latin-1"],
)
def test_sessions_tsv_in_spreadsheet_encodings_is_read(tmp_path, encoded):
    case = scan_case(hostile.bids_case(tmp_path / "case", sessions_tsv=encoded))
    assert [(s.label, s.study_date.isoformat()) for s in case.sessions] == [
        ("ses-a", "2023-03-14"),
        ("ses-b", "2023-03-17"),
    ]


@pytest.mark.parametrize(
    ("encoded", "match"),
    [
        (
            _TSV.encode() + b"ses-a\t2024-01-01\n",
            r"line 4: ses-a is listed again \(first on line 2\)",
        ),
        (_TSV.encode("utf-16-le"), "NUL bytes"),
        (b"session\tdate\nses-a\t2023-03-14\n", "missing column"),
    ],
    ids=["duplicate session", "UTF-16 without BOM", "wrong columns"],
)
def test_bad_sessions_tsv_is_a_named_error(tmp_path, encoded, match):
    root = hostile.bids_case(tmp_path / "case", sessions_tsv=encoded)
    with pytest.raises(NiftiLayoutError, match=match):
        scan_case(root)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not a readable JSON sidecar"),
        (b"[1, 2]", "must be an object"),
        (b'{"EchoTime": "abc"}', "EchoTime is 'abc' but must be a finite number"),
        (b'{"SeriesNumber": "x"}', "SeriesNumber"),
        (b'{"ImageType": "ORIGINAL"}', "ImageType"),
        (b'{"LeukotrackSequenceClass": "T2STAR"}', "LeukotrackSequenceClass"),
        (b'{"PatientID": {"a": 1}}', "PatientID"),
        (b"\xff\xfe{", "not a readable JSON sidecar"),
    ],
)
def test_bad_or_wrongly_typed_sidecars_are_named_errors(tmp_path, content, match):
    root = hostile.bids_case(tmp_path / "case")
    sidecar = root / "ses-a" / "anat" / "sub-x_ses-a_FLAIR.json"
    sidecar.write_bytes(content)
    with pytest.raises(NiftiLayoutError, match=match) as caught:
        scan_case(root)
    assert str(sidecar) in str(caught.value)


@pytest.mark.parametrize("kept", [0.3, 0.9])
def test_a_truncated_nii_gz_is_a_named_error_not_aborted(tmp_path, kept):
    root = hostile.bids_case(tmp_path / "case")
    target = root / "ses-a" / "anat" / "sub-x_ses-a_FLAIR.nii.gz"
    hostile.truncate(target, int(target.stat().st_size * kept))
    with pytest.raises(TruncatedNiftiError, match="truncated"):
        if kept < 0.5:  # the header itself is cut: found while indexing
            scan_case(root)
        else:  # the header is whole: found when the voxels are read
            scan_case(root).sessions[0].series[0].load()
    result = runner.invoke(app, ["analyze", str(root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "TruncatedNiftiError" in result.output and "Aborted" not in result.output
    _nothing_written(tmp_path / "out")


@pytest.mark.parametrize(
    "name", ["sessions.tsv", "ses-a/anat/sub-x_ses-a_FLAIR.json"], ids=["sessions.tsv", "sidecar"]
)
def test_a_2_gib_sidecar_or_sessions_tsv_is_refused_unread(tmp_path, name):
    root = hostile.bids_case(tmp_path / "case")
    (root / name).unlink()
    hostile.sparse_stray_file(root / name)
    with pytest.raises(NiftiLayoutError, match="far too large"):
        scan_case(root)


def test_a_truncated_nii_is_found_when_indexing(tmp_path):
    root = hostile.bids_case(tmp_path / "case")
    target = root / "ses-a" / "anat" / "sub-x_ses-a_FLAIR.nii.gz"
    image = load_nifti(target)
    plain = target.with_name("sub-x_ses-a_FLAIR.nii")
    target.unlink()
    nib.save(image.to_nifti(), plain)
    hostile.truncate(plain, plain.stat().st_size - 10)
    with pytest.raises(TruncatedNiftiError, match="truncated"):
        scan_case(root)


def test_no_images_is_still_no_images(tmp_path):
    (tmp_path / "case").mkdir()
    (tmp_path / "case" / "notes.bin").write_bytes(b"hello")
    with pytest.raises(NoImagesFoundError):
        scan_case(tmp_path / "case")
