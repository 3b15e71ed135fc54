"""``leukotrack batch``: every case folder under a root, in parallel on Dask, into one output folder.

Each case runs as one task on a Dask worker (a LocalCluster of worker processes by default, or the
cluster behind an existing scheduler). The task takes an exclusive lock on the case
(``OUT/.locks/<case>.lock``), removes what a killed run may have left (hidden temporary folders,
:func:`safeio.clean_stale`), fingerprints the inputs (sha256 of every file, the pipeline parameters
and the software version) and compares it with the fingerprint in the case's existing
``provenance.json``: equal means unchanged, skipped; otherwise the case is analysed (outputs renamed
into place only when complete). The client ingests each finished case into the store in one
transaction, under the same lock. So a second run on the same output waits for the first one's cases
and then skips them; a run killed with SIGKILL leaves the old outputs and rows, which the next run
completes; one failing case is recorded with its reason and never stops the others. Case folders
whose names give one case id (``pt-1`` and ``pt_1`` both give ``pt1``) all fail with
:class:`~followup.errors.CaseIdCollisionError` and are not analysed (and an ``OUT/sub-<case>`` of
another input folder is never overwritten).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import resource
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from followup.analyze import OUTPUT_LAYOUT, analyze_case, input_hashes, software_version
from followup.corrections import reapply
from followup.errors import CaseIdCollisionError, CorrectionError
from followup.inspect import case_folders
from followup.store import COHORT_COLUMNS, Store
from followup.tsv import safe_cell
from imaging.case import case_id_from_folder
from imaging.pipeline import PipelineParams, engine_infos
from imaging.quantify import as_cell
from imaging.track import TrackingParams
from safeio import clean_stale, writable_folder, write_text

__all__ = [
    "BatchSummary",
    "CaseOutcome",
    "analyze_into_store",
    "case_fingerprint",
    "case_id_collisions",
    "process_case_task",
    "run_batch",
]

#: Outcome statuses: analysed now, unchanged since an earlier run (skipped), or failed.
DONE, UNCHANGED, FAILED = "done", "unchanged", "failed"


@dataclass
class CaseOutcome:
    """What one case task did (returned from the worker to the client)."""

    case_id: str
    source_dir: str
    status: str
    fingerprint: str | None = None
    error: str | None = None
    seconds: float = 0.0
    worker_peak_rss_mb: float = 0.0
    worker_pid: int = 0
    #: False when the failure must not touch the store's row of ``case_id`` (which belongs to
    #: another input folder: a case-id collision).
    recorded: bool = True


@dataclass
class BatchSummary:
    """A batch run's result: per-case outcomes and the counts that decide the exit status."""

    run_id: int
    outcomes: list[CaseOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_done(self) -> int:
        """Cases analysed in this run."""
        return sum(o.status == DONE for o in self.outcomes)

    @property
    def n_skipped(self) -> int:
        """Cases unchanged since an earlier run."""
        return len(self.skipped)

    @property
    def n_failed(self) -> int:
        """Cases that failed (each with its reason in the store and in cohort.tsv)."""
        return sum(o.status == FAILED for o in self.outcomes)


def _parameters(params: PipelineParams | None = None) -> dict[str, Any]:
    params = params or PipelineParams()
    return {
        "pipeline": params.to_dict(),
        "engines": engine_infos(params),
        "tracking": TrackingParams().to_dict(),
        "software": software_version(),
        "output_layout": OUTPUT_LAYOUT,
    }


def case_fingerprint(
    case_dir: Path,
    hashes: dict[str, str] | None = None,
    params: PipelineParams | None = None,
    *,
    allow_mixed_patients: bool = False,
) -> str:
    """sha256 over the case's file contents, the analysis parameters (engines with their versions
    and model files included) and the software version (``hashes``: the files' sha256 when the
    caller already has them, from :func:`input_hashes`). A case analysed with
    ``allow_mixed_patients`` has another fingerprint than one without, so a run without the flag
    refuses it again instead of skipping it as unchanged."""
    parameters = _parameters(params)
    if allow_mixed_patients:
        parameters["allow_mixed_patients"] = True
    payload = {"inputs": hashes or input_hashes(case_dir), "parameters": parameters}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def case_lock(out_dir: Path, case_id: str) -> Iterator[None]:
    """An exclusive lock on one case of one output folder (released when the holder dies)."""
    folder = Path(out_dir) / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{case_id}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_leftovers(out_dir: Path, case_id: str) -> None:
    """Remove hidden partial/old folders of ``case_id`` that a killed run left (under its lock),
    also those of leukotrack versions before :mod:`safeio` (``.sub-<case>.partial-*``)."""
    subject = f"sub-{case_id}"
    clean_stale(Path(out_dir), subject)
    for pattern in (f".{subject}.partial-*", f".{subject}.old-*"):
        for path in Path(out_dir).glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
    if not (Path(out_dir) / subject).exists():  # killed between the two renames: restore the old
        olds = sorted(Path(out_dir).glob(f".{subject}.old-*"))
        if olds:
            olds[-1].rename(Path(out_dir) / subject)


def _stored_fingerprint(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / "provenance.json").read_text()).get("fingerprint"))
    except (OSError, ValueError):
        return None


def process_case_task(
    case_dir: str,
    out_dir: str,
    threads: int = 0,
    progress: Callable[[str], None] | None = None,
    params: PipelineParams | None = None,
    allow_mixed_patients: bool = False,
) -> CaseOutcome:
    """Analyse one case unless its outputs are up to date; never raises (runs on a Dask worker).

    Parameters
    ----------
    case_dir, out_dir : str
        The case folder and the batch output folder.
    threads : int
        Threads for SimpleITK within this task (0 = its default, all cores); a batch with one task
        per core runs each single-threaded.
    progress : callable, optional
        Called with a short message at each step of the analysis (in-process use only).
    params : PipelineParams, optional
        Pipeline settings (engines); default :class:`PipelineParams`.
    allow_mixed_patients : bool
        Accept studies of several patients in the case folder (see :func:`imaging.case.scan_case`).
    """
    start = time.perf_counter()
    case = Path(case_dir)
    case_id = case_id_from_folder(case)
    outcome = CaseOutcome(case_id, str(case), FAILED, worker_pid=os.getpid())
    try:
        if threads > 0:
            import SimpleITK as sitk

            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        with case_lock(Path(out_dir), case_id):
            _clean_leftovers(Path(out_dir), case_id)
            hashes = input_hashes(case)  # read every input once: fingerprint and provenance
            fingerprint = case_fingerprint(
                case, hashes, params, allow_mixed_patients=allow_mixed_patients
            )
            outcome.fingerprint = fingerprint
            if _stored_fingerprint(Path(out_dir) / f"sub-{case_id}") == fingerprint:
                outcome.status = UNCHANGED
            else:
                extra = {"fingerprint": fingerprint, "input_sha256": hashes}
                analyze_case(
                    case,
                    Path(out_dir),
                    params=params,
                    provenance_extra=extra,
                    progress=progress,
                    allow_mixed_patients=allow_mixed_patients,
                )
                outcome.status = DONE
    except CaseIdCollisionError as error:  # the store's row of this id is another folder's
        outcome.status, outcome.recorded = FAILED, False
        outcome.error = f"{type(error).__name__}: {error}"
    except Exception as error:  # one bad case must never stop the batch
        outcome.status = FAILED
        outcome.error = f"{type(error).__name__}: {error}"
    outcome.seconds = time.perf_counter() - start
    outcome.worker_peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return outcome


def _record(store: Store, out_dir: Path, outcome: CaseOutcome, run_id: int) -> bool:
    """Put one outcome into the store; True if the case was skipped (store already up to date)."""
    if not outcome.recorded:
        return False
    with case_lock(out_dir, outcome.case_id):
        if outcome.status == FAILED:
            store.record_failure(
                outcome.case_id, Path(outcome.source_dir), outcome.error or "", run_id
            )
            return False
        state = store.case_state(outcome.case_id)
        if (
            outcome.status == UNCHANGED
            and state is not None
            and state.status == "done"
            and state.fingerprint == outcome.fingerprint
        ):
            return True
        folder = out_dir / f"sub-{outcome.case_id}"
        if outcome.status == DONE:  # a new automatic result: the reader's corrections again
            try:
                reapply(store, folder)
            except (CorrectionError, OSError) as error:
                outcome.status, outcome.error = FAILED, f"{type(error).__name__}: {error}"
                store.record_failure(
                    outcome.case_id, Path(outcome.source_dir), outcome.error, run_id
                )
                return False
        store.ingest_case(folder, Path(outcome.source_dir), run_id)
        return outcome.status == UNCHANGED


def case_id_collisions(cases: list[Path]) -> dict[Path, CaseIdCollisionError]:
    """The case folders whose names give the same case id (``pt-1``, ``pt_1``), each with its error."""
    by_id: dict[str, list[Path]] = {}
    for case in cases:
        by_id.setdefault(case_id_from_folder(case), []).append(case)
    errors = {}
    for case_id, folders in by_id.items():
        if len(folders) < 2:
            continue
        names = ", ".join(folder.name for folder in folders)
        for folder in folders:
            errors[folder] = CaseIdCollisionError(
                f"{folder}: the folders {names} all give the case id {case_id!r}, so their "
                f"results would overwrite each other in sub-{case_id}; none of them was analysed. "
                "Rename the folders so that their letters and digits differ (or analyse one with "
                "`leukotrack analyze FOLDER --case-id NEWID`)"
            )
    return errors


def write_cohort(store: Store, out_dir: Path) -> Path:
    """cohort.tsv from the store's cohort view, written atomically."""
    rows = store.cohort_rows()
    lines = ["\t".join(COHORT_COLUMNS)]
    for row in rows:
        cells = []
        for column in COHORT_COLUMNS:
            value = row.get(column)
            if isinstance(value, bool):
                value = int(value)
            cell = str(as_cell(value)).replace("\t", " ").replace("\n", " ").replace("\r", " ")
            cells.append(str(safe_cell(cell)))
        lines.append("\t".join(cells))
    return write_text(out_dir / "cohort.tsv", "\n".join(lines) + "\n")


def run_batch(
    root: Path,
    out_dir: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    database_url: str | None = None,
    on_outcome: Callable[[CaseOutcome, bool], None] | None = None,
    threads: int | None = None,
    params: PipelineParams | None = None,
    allow_mixed_patients: bool = False,
) -> BatchSummary:
    """Analyse every case folder directly under ``root`` into ``out_dir``.

    Parameters
    ----------
    workers : int, optional
        Worker processes of the LocalCluster (default: the number of cores). 0 runs the cases one
        after the other in this process, without Dask (for debugging and the overhead benchmark).
    scheduler : str, optional
        Address of an existing Dask scheduler (e.g. ``tcp://10.0.0.5:8786``); its workers must have
        leukotrack installed and see ``root`` and ``out_dir`` at the same paths.
    database_url : str, optional
        Store URL (default: ``$LEUKOTRACK_DATABASE_URL``, else ``out_dir/leukotrack.sqlite``).
    on_outcome : callable, optional
        Called with each outcome and whether it was skipped, as cases finish.
    threads : int, optional
        SimpleITK threads per case (default: cores / local workers; all cores for ``workers=0``
        and for an external scheduler).
    params : PipelineParams, optional
        Pipeline settings (engines) for every case; recorded in the run and the fingerprints.
    allow_mixed_patients : bool
        Accept case folders holding studies of several patients (recorded in each provenance.json
        and in the run's parameters); by default such a case fails with MixedPatientsError.
    """
    start = time.perf_counter()
    out_dir = writable_folder(Path(out_dir))
    cases = case_folders(Path(root))
    store = Store(out_dir, database_url)
    parameters = {
        **_parameters(params),
        "root": str(Path(root).resolve()),
        "workers": workers,
        "scheduler": scheduler,
        "allow_mixed_patients": allow_mixed_patients,
    }
    run_id = store.start_run("batch", parameters, software_version(), len(cases))
    summary = BatchSummary(run_id)

    def handle(outcome: CaseOutcome) -> None:
        skipped = _record(store, out_dir, outcome, run_id)
        if skipped:
            summary.skipped.append(outcome.case_id)
        summary.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome, skipped)

    colliding = case_id_collisions(cases)
    cases = [case for case in cases if case not in colliding]
    try:
        for case, error in colliding.items():
            handle(
                CaseOutcome(
                    case_id_from_folder(case),
                    str(case),
                    FAILED,
                    error=f"{type(error).__name__}: {error}",
                    recorded=False,
                )
            )
        if workers == 0 and scheduler is None:
            for case in cases:
                handle(
                    process_case_task(
                        str(case),
                        str(out_dir),
                        threads or 0,
                        None,
                        params,
                        allow_mixed_patients,
                    )
                )
        else:
            _run_on_dask(
                cases, out_dir, workers, scheduler, handle, threads, params, allow_mixed_patients
            )
    finally:
        write_cohort(store, out_dir)
        store.finish_run(
            run_id, done=summary.n_done, skipped=summary.n_skipped, failed=summary.n_failed
        )
        store.close()
    summary.seconds = time.perf_counter() - start
    return summary


def analyze_into_store(
    case_dir: Path,
    out_dir: Path,
    *,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
    command: str = "analyze",
    params: PipelineParams | None = None,
    allow_mixed_patients: bool = False,
) -> CaseOutcome:
    """One case analysed in this process and recorded in the store, as one batch of one case would
    be (same lock, fingerprint, skip-if-unchanged and cohort.tsv); never raises on a bad case.

    The dashboard's import page runs this; ``progress`` receives the analysis steps.
    """
    out_dir = writable_folder(Path(out_dir))
    store = Store(out_dir, database_url)
    try:
        parameters = {**_parameters(params), "case_dir": str(Path(case_dir).resolve())}
        run_id = store.start_run(command, parameters, software_version(), 1)
        outcome = process_case_task(
            str(case_dir), str(out_dir), 0, progress, params, allow_mixed_patients
        )
        skipped = _record(store, out_dir, outcome, run_id)
        write_cohort(store, out_dir)
        store.finish_run(
            run_id,
            done=int(outcome.status == DONE),
            skipped=int(skipped),
            failed=int(outcome.status == FAILED),
        )
    finally:
        store.close()
    return outcome


def _run_on_dask(
    cases: list[Path],
    out_dir: Path,
    workers: int | None,
    scheduler: str | None,
    handle: Callable[[CaseOutcome], None],
    threads: int | None = None,
    params: PipelineParams | None = None,
    allow_mixed_patients: bool = False,
) -> None:
    from distributed import Client, LocalCluster, as_completed

    if logging.getLogger().level > logging.INFO:  # the cluster's start/stop chatter, unless -v
        logging.getLogger("distributed").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout="30s"))
            threads = threads or 0
        else:
            n = workers or os.cpu_count() or 1
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=40,
                )
            )
            client = stack.enter_context(Client(cluster))
            threads = threads or max(1, (os.cpu_count() or 1) // n)
        futures = {
            client.submit(
                process_case_task,
                str(case),
                str(out_dir),
                threads,
                None,
                params,
                allow_mixed_patients,
                key=f"leukotrack-{case.name}-{uuid.uuid4().hex[:8]}",
                pure=False,
            ): case
            for case in cases
        }
        for future in as_completed(futures):
            case = futures[future]
            try:
                outcome = future.result()
            except Exception as error:  # the worker died (e.g. out of memory): KilledWorker
                outcome = CaseOutcome(
                    case_id_from_folder(case),
                    str(case),
                    FAILED,
                    error=f"{type(error).__name__}: {error}",
                )
            handle(outcome)


def outcome_dict(outcome: CaseOutcome) -> dict[str, Any]:
    """An outcome as a plain dict (for JSON reports)."""
    return asdict(outcome)
