"""``leukotrack batch`` with the real parts: a Dask LocalCluster of 2 worker processes, a separately
started scheduler and worker, SQLite and a real PostgreSQL server, a run killed with SIGKILL and
resumed, and two runs on one output at the same time.

The cohort comes from the sample generator with other seeds: a case with lesions (seed 11, two
sessions), a lesion-free control (seed 7, one session) and a deliberately corrupt copy of the first
(one DICOM file cut after 300 bytes).
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from followup.batch import run_batch
from followup.store import Store

pytestmark = pytest.mark.slow


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        counts = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("cases", "sessions", "lesions", "measurements", "series")
        }
        duplicates = connection.execute(
            text(
                "SELECT count(*) FROM (SELECT case_pk, session_id FROM sessions "
                "GROUP BY case_pk, session_id HAVING count(*) > 1) d"
            )
        ).scalar_one()
    engine.dispose()
    return {**counts, "duplicate_sessions": duplicates}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".sub-*"))


def _copy(cases: dict[str, Path], root: Path, *names: str) -> Path:
    root.mkdir(parents=True)
    for name in names:
        shutil.copytree(cases[name], root / name)
    return root


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    from synthetic import make_case

    base = tmp_path_factory.mktemp("cohort-source")
    made = {
        "seed11": make_case(base / "seed11", seed=11, days=(0, 3), case_id="seed11"),
        "control": make_case(base / "control", seed=7, lesions=False, days=(0,), case_id="control"),
    }
    for case in made.values():
        shutil.rmtree(case / "truth")
    corrupt = base / "corrupt"
    shutil.copytree(made["seed11"], corrupt)
    victim = sorted((corrupt / "DICOM").rglob("IM*"))[20]
    victim.write_bytes(victim.read_bytes()[:300])
    return {**made, "corrupt": corrupt}


@pytest.fixture(scope="module")
def first_run(cases, tmp_path_factory):
    root = _copy(cases, tmp_path_factory.mktemp("c") / "root", "seed11", "control", "corrupt")
    out = tmp_path_factory.mktemp("out")
    seen = []
    summary = run_batch(root, out, workers=2, on_outcome=lambda o, s: seen.append((o, s)))
    return root, out, summary, seen


def test_a_local_cluster_runs_the_cohort_and_isolates_the_corrupt_case(first_run):
    _root, out, summary, seen = first_run
    assert (summary.n_done, summary.n_skipped, summary.n_failed) == (2, 0, 1)
    assert len(seen) == 3  # per-case status reached the caller as cases finished
    failed = next(o for o in summary.outcomes if o.status == "failed")
    assert failed.case_id == "corrupt" and failed.error.startswith("TruncatedFileError")
    assert {o.worker_pid for o in summary.outcomes} - {0}  # ran in worker processes
    assert os.getpid() not in {o.worker_pid for o in summary.outcomes}
    cohort = _read(out / "cohort.tsv")
    assert [(r["case_id"], r["status"], r["day"]) for r in cohort] == [
        ("control", "done", "0"),
        ("corrupt", "failed", ""),
        ("seed11", "done", "0"),
        ("seed11", "done", "3"),
    ]
    assert "TruncatedFileError" in cohort[1]["error"]
    assert float(cohort[0]["flair_lesion_volume_ml"]) < 0.5  # the lesion-free control
    assert float(cohort[3]["flair_lesion_volume_ml"]) > 0.5
    assert not (out / "sub-corrupt").exists() and _leftovers(out) == []
    counts = _counts(f"sqlite:///{out / 'leukotrack.sqlite'}")
    assert counts["cases"] == 3 and counts["sessions"] == 3 and counts["duplicate_sessions"] == 0
    assert counts["lesions"] == len(_read(out / "sub-seed11" / "lesions.tsv")) + len(
        _read(out / "sub-control" / "lesions.tsv")
    )
    store = Store(out)
    assert [r["case_id"] for r in store.cohort_rows()] == [r["case_id"] for r in cohort]
    store.close()


def test_the_store_holds_the_same_on_postgresql(first_run, postgres_db_url, tmp_path):
    """The outputs of the first run, indexed into a real PostgreSQL server: the worker finds every
    case unchanged (same fingerprint) and the client ingests it; the rows equal SQLite's."""
    _, out, _, _ = first_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("leukotrack.sqlite*", ".locks"))
    summary = run_batch(first_run[0], copy, workers=0, database_url=postgres_db_url)
    assert (summary.n_done, summary.n_failed) == (0, 1)
    assert sorted(o.status for o in summary.outcomes) == ["failed", "unchanged", "unchanged"]
    assert _counts(postgres_db_url) == _counts(f"sqlite:///{out / 'leukotrack.sqlite'}")
    again = run_batch(first_run[0], copy, workers=0, database_url=postgres_db_url)
    assert again.n_skipped == 2 and _counts(postgres_db_url)["duplicate_sessions"] == 0
    assert _read(copy / "cohort.tsv") == _read(out / "cohort.tsv")


def test_an_existing_scheduler_with_separate_worker_processes(cases, tmp_path):
    root = _copy(cases, tmp_path / "root", "control")
    out = tmp_path / "out"
    scheduler_file = tmp_path / "scheduler.json"
    dask = Path(sys.executable).with_name("dask")
    logs = (tmp_path / "scheduler.log").open("w")
    processes = [
        subprocess.Popen(
            [
                str(dask),
                "scheduler",
                "--scheduler-file",
                str(scheduler_file),
                "--port",
                "0",
                "--no-dashboard",
            ],
            stdout=logs,
            stderr=logs,
            start_new_session=True,
        )
    ]
    try:
        for _ in range(300):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        processes.append(
            subprocess.Popen(
                [
                    str(dask),
                    "worker",
                    address,
                    "--nworkers",
                    "1",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                ],
                stdout=logs,
                stderr=logs,
                start_new_session=True,
            )
        )
        summary = run_batch(root, out, scheduler=address)
        errors = [o.error for o in summary.outcomes]
        assert (summary.n_done, summary.n_failed) == (1, 0), errors
        worker_pid = summary.outcomes[0].worker_pid
        assert worker_pid not in (os.getpid(), *(p.pid for p in processes))  # a worker's child
        assert (out / "sub-control" / "sessions.tsv").is_file()
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        logs.close()


def _held_by_another_process(lock: Path) -> bool:
    """True when another process holds the flock of ``lock`` (followup.batch.case_lock)."""
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _wait_for(
    condition: Callable[[], bool], process: subprocess.Popen, limit_s: float = 600
) -> bool:
    """Poll ``condition`` until it holds (True), or the process ends or ``limit_s`` passes (False).

    A bounded poll of an observable state; the limit only stops a broken run from hanging the suite.
    """
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _batch_command(root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "followup.cli", "batch", str(root), "--out", str(out), *extra]


def test_a_run_killed_with_sigkill_resumes_without_loss_or_duplicates(cases, tmp_path):
    root = _copy(cases, tmp_path / "root", "control", "seed11")
    out = tmp_path / "out"
    process = subprocess.Popen(
        _batch_command(root, out, "--workers", "1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    # kill as soon as the second case is being analysed: the first case is in place and a worker
    # holds the second case's lock while its output is not (an observed state, not a guessed delay)
    in_second_case = _wait_for(
        lambda: (
            (out / "sub-control").exists()
            and _held_by_another_process(out / ".locks" / "seed11.lock")
            and not (out / "sub-seed11").exists()
        ),
        process,
    )
    os.killpg(process.pid, signal.SIGKILL)
    assert in_second_case, "the run never reached the second case's analysis"
    process.wait()
    assert not (out / "sub-seed11").exists()  # killed mid-case: nothing half-written in place

    summary = run_batch(root, out, workers=1)
    status = {o.case_id: o.status for o in summary.outcomes}
    assert status == {"control": "unchanged", "seed11": "done"}  # control was not recomputed
    assert summary.n_failed == 0
    assert _leftovers(out) == []
    counts = _counts(f"sqlite:///{out / 'leukotrack.sqlite'}")
    assert (counts["cases"], counts["sessions"], counts["duplicate_sessions"]) == (2, 3, 0)
    engine = create_engine(f"sqlite:///{out / 'leukotrack.sqlite'}")
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT status FROM runs ORDER BY id")).scalars().all()
    engine.dispose()
    assert runs == ["interrupted", "finished"]


def test_two_runs_on_one_output_do_each_case_once(cases, tmp_path):
    root = _copy(cases, tmp_path / "root", "control", "seed11")
    out = tmp_path / "out"
    runs = [
        subprocess.Popen(
            _batch_command(root, out, "--workers", "1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    engine = create_engine(f"sqlite:///{out / 'leukotrack.sqlite'}")
    with engine.connect() as connection:
        done, skipped = connection.execute(
            text("SELECT sum(n_done), sum(n_skipped) FROM runs WHERE status = 'finished'")
        ).one()
    engine.dispose()
    assert (done, skipped) == (2, 2), outputs  # each case analysed once, found done by the other
    counts = _counts(f"sqlite:///{out / 'leukotrack.sqlite'}")
    assert (counts["cases"], counts["sessions"], counts["duplicate_sessions"]) == (2, 3, 0)
    assert _leftovers(out) == []


def test_a_rerun_skips_unchanged_cases_and_redoes_changed_ones(first_run, cases):
    root, out, _, _ = first_run
    again = run_batch(root, out, workers=2)
    assert sorted(again.skipped) == ["control", "seed11"]
    assert again.n_done == 0 and again.n_failed == 1  # the corrupt case is tried again
    (root / "control" / "events.csv").write_text("date,kind,label\n2023-03-10,admission,x\n")
    shutil.rmtree(root / "corrupt")
    shutil.copytree(cases["control"], root / "corrupt")  # the export was repaired
    changed = run_batch(root, out, workers=2)
    assert {o.case_id: o.status for o in changed.outcomes} == {
        "control": "done",
        "corrupt": "done",
        "seed11": "unchanged",
    }
    cohort = {r["case_id"]: r["status"] for r in _read(out / "cohort.tsv")}
    assert cohort == {"control": "done", "corrupt": "done", "seed11": "done"}
    engine = create_engine(f"sqlite:///{out / 'leukotrack.sqlite'}")
    with engine.connect() as connection:
        events = connection.execute(text("SELECT kind FROM events")).scalars().all()
    engine.dispose()
    assert events == ["admission"]
