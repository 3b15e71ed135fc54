"""The ``leukotrack`` command line. Research use only, not for diagnosis."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from followup.debuglog import describe
from followup.inspect import case_folders, case_summary, find_cases
from imaging.case import scan_case
from imaging.errors import ImagingError, NoImagesFoundError

__all__ = ["app"]

RESEARCH_USE = (
    "leukotrack is for research use only; it is not a medical device and not for diagnosis."
)

app = typer.Typer(
    name="leukotrack",
    help="Follow toxic leukoencephalopathy on MRI: DWI, ADC and FLAIR lesions over sessions, beside "
    "the drug exposure. " + RESEARCH_USE,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 140)  # piped output: no wrapping at 80
error_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

#: ``--engine`` of analyze and batch.
EngineOption = Annotated[
    list[str] | None,
    typer.Option(
        "--engine",
        help="Lesion engine by name: NAME or flair=NAME for FLAIR, dwi=NAME for DWI; repeatable. "
        "`leukotrack engines` lists them. Default: the built-in engines.",
    ),
]


#: ``--uncertainty`` of analyze and batch.
UncertaintyOption = Annotated[
    str,
    typer.Option(
        "--uncertainty",
        help="How the 95 % intervals are measured: off (none; +-30 % rule alone), fast (4 "
        "perturbed re-segmentations per session), standard (8, the default), full (16). "
        "README: Uncertainty.",
    ),
]


def _pipeline_params(engine: list[str] | None, uncertainty: str = "standard") -> Any:
    from imaging.pipeline import PipelineParams, parse_engine_choice
    from imaging.uncertainty import UncertaintyParams

    chosen = parse_engine_choice(engine or [])
    return PipelineParams(
        **{f"{source}_engine": name for source, name in chosen.items()},  # type: ignore[arg-type]
        uncertainty=UncertaintyParams.level(uncertainty),
    )


def _reports_errors(command: F) -> F:
    """Turn every error into one readable line on stderr and exit status 1, never a traceback.

    Named errors of the layers keep their message; anything unexpected is named with what to do and
    the debug log holding its traceback (:mod:`followup.debuglog`). Ctrl+C exits with 130.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            error_console.print("interrupted; no partial output was kept", markup=False)
            raise typer.Exit(code=130) from None
        except Exception as error:
            line, _log = describe(error, context=command.__name__)
            error_console.print(Text("error: ", style="bold red") + Text(line), soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show debug notes (e.g. skipped files).")
    ] = False,
) -> None:
    """Set up logging for every command."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=error_console, show_path=False, show_time=False)],
        force=True,
    )


def _fmt_shape(shape: list[int] | None) -> str:
    return "x".join(str(n) for n in shape) if shape else "-"


def _fmt_patient(patient: dict[str, str]) -> str:
    name = f"name #{patient['name_sha256_8']}" if patient["name_sha256_8"] else "no name"
    born = f"born {patient['birth_date']}" if patient["birth_date"] else "no birth date"
    return escape(f"patient {patient['patient_id']!r} ({name}, {born})")


def _fmt_spacing(spacing: list[float] | None) -> str:
    return "x".join(f"{v:.3g}" for v in spacing) if spacing else "-"


@app.command()
@_reports_errors
def inspect(
    path: Annotated[
        Path, typer.Argument(help="A case folder, a DICOM export, or a folder of cases.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List the studies (sessions) and series found under PATH, with class, b-values and geometry."""
    cases = [case_summary(case) for case in find_cases(path)]
    if as_json:
        sys.stdout.write(json.dumps({"path": str(path), "cases": cases}, indent=2) + "\n")
        return
    for case in cases:
        console.print(
            f"[bold]case {escape(str(case['case_id']))}[/] ({case['layout']}, "
            f"{len(case['sessions'])} sessions) in {escape(str(case['root']))}"
        )
        if case["mixed_patients"]:
            console.print(
                f"[bold red]{len(case['patients'])} patients in one case folder[/]: analyze and "
                "batch refuse it (a case is one patient) unless given --allow-mixed-patients"
            )
        for session in case["sessions"]:
            who = ", ".join(_fmt_patient(p) for p in session["patients"]) or "patient unknown"
            table = Table(
                title=f"{escape(str(session['session_id']))}  "
                f"{escape(str(session['study_date'] or 'undated'))}  "
                f"{who}  "
                f"[dim]has {', '.join(session['has']) or 'no DWI/ADC/FLAIR'}[/]",
                title_justify="left",
                show_lines=False,
            )
            for column in ("#", "class", "description", "b-values", "shape", "voxel mm", "why"):
                table.add_column(column, overflow="fold")
            for row in session["series"]:
                why = escape("; ".join(row["reasons"]))
                if row["problem"]:  # the full text is in --json
                    why = f"[red]not loadable ({escape(row['problem'].split(':')[0])})[/]"
                table.add_row(
                    str(row["series_number"] if row["series_number"] is not None else "-"),
                    escape(str(row["sequence"])),
                    escape(str(row["description"])),
                    ",".join(f"{b:g}" for b in row["b_values"]) or "-",
                    _fmt_shape(row["shape"]),
                    _fmt_spacing(row["voxel_size_mm"]),
                    why,
                )
            console.print(table)


@app.command()
@_reports_errors
def convert(
    series_dir: Annotated[
        Path, typer.Argument(help="A folder (or file) holding one DICOM series.")
    ],
    out: Annotated[Path, typer.Argument(help="Output NIfTI, ending in .nii.gz or .nii.")],
) -> None:
    """Convert one DICOM series to NIfTI, with a .bval for DWI and a JSON sidecar."""
    from imaging.dicom import load_series_folder
    from imaging.nifti import save_nifti

    image = load_series_folder(series_dir)
    written = save_nifti(image, out)
    bvals = "" if image.bvals_s_mm2 is None else f", b-values {list(image.bvals_s_mm2)}"
    console.print(
        f"{image.sequence.value} {image.shape}{bvals}: "
        f"{image.acquisition.classification_reasons[0]}",
        markup=False,
    )
    for path in written:
        console.print(f"  wrote {path}", markup=False)


@app.command()
@_reports_errors
def engines() -> None:
    """List the lesion segmentation engines (name, version, method) usable with --engine."""
    from rich.markup import escape

    from imaging.engines import available_engines, dwi_engine, flair_engine
    from imaging.pipeline import PipelineParams

    params = PipelineParams()
    table = Table(title="lesion engines", title_justify="left")
    for column in ("source", "name", "version", "default", "method"):
        table.add_column(column)
    for source, names in available_engines().items():
        default = getattr(params, f"{source}_engine")
        for name in names:
            make = flair_engine if source == "flair" else dwi_engine
            info = make(name, params).info
            table.add_row(
                source, name, info.version, "yes" if name == default else "", escape(info.method)
            )
    console.print(table)


@app.command()
@_reports_errors
def analyze(
    case_dir: Annotated[
        Path,
        typer.Argument(
            help="One patient's folder: DICOM or BIDS-like NIfTI, and/or clinical CSVs."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder (BIDS derivatives).")],
    index_date: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Day 0 of every output: first_mri, first_dose, symptom_onset, admission, "
            "drug_stop or a date (YYYY-MM-DD). Default: index_date of patient.csv, else the "
            "first MRI.",
        ),
    ] = None,
    engine: EngineOption = None,
    uncertainty: UncertaintyOption = "standard",
    allow_mixed_patients: Annotated[
        bool,
        typer.Option(
            "--allow-mixed-patients",
            help="Accept studies of several patients (PatientID, name, birth date) in the case "
            "folder, e.g. one patient under two IDs; recorded in provenance.json.",
        ),
    ] = False,
    case_id_option: Annotated[
        str | None,
        typer.Option(
            "--case-id",
            help="The case id (letters and digits; default: the folder's name without other "
            "characters). Give one when two folders would get the same id (e.g. "
            "patientA/DICOM and patientB/DICOM both give DICOM).",
        ),
    ] = None,
) -> None:
    """Register, segment, measure and track every session of one case, place it beside the drug
    exposure; write OUT/sub-<case>/."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from clinical.record import has_clinical_files
    from followup.analyze import analyze_case, valid_case_id
    from imaging.case import case_id_from_folder, scan_case

    params = _pipeline_params(engine, uncertainty)
    try:
        index = scan_case(case_dir, allow_mixed_patients=allow_mixed_patients)
    except NoImagesFoundError:
        if not has_clinical_files(case_dir):
            raise
        index = None
    if case_id_option is not None:
        valid_case_id(case_id_option)
    case_id = case_id_option or (index.case_id if index else case_id_from_folder(case_dir))
    steps = 4 * len(index.sessions) + 3 if index else 2
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task(f"case {case_id}", total=steps)

        def step(message: str) -> None:
            bar.update(task, description=escape(f"{case_id}: {message}"), advance=1)

        result = analyze_case(
            case_dir,
            out,
            params=params,
            progress=step,
            index=index,
            index_rule=index_date,
            allow_mixed_patients=allow_mixed_patients,
            case_id=case_id_option,
        )
        bar.update(task, completed=steps, description=f"{case_id}: done")
    if result.sessions:
        _print_sessions(result.sessions)
    else:
        console.print(f"{case_id}: no images; clinical files only", markup=False)
    for warning in result.warnings:  # also in provenance.json, "clinical" -> "warnings"
        error_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    console.print(f"wrote {result.folder}", markup=False)


@app.command()
@_reports_errors
def batch(
    root: Annotated[Path, typer.Argument(help="A folder whose sub-folders are the cases.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (BIDS derivatives + store).")],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes of the local Dask cluster (default: one per core; 0 = no Dask, "
            "one case after the other in this process).",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Address of an existing Dask scheduler (tcp://host:8786)."
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="Store URL (default: $LEUKOTRACK_DATABASE_URL, else OUT/leukotrack.sqlite).",
        ),
    ] = None,
    engine: EngineOption = None,
    uncertainty: UncertaintyOption = "standard",
    allow_mixed_patients: Annotated[
        bool,
        typer.Option(
            "--allow-mixed-patients",
            help="Accept case folders holding studies of several patients; recorded in each "
            "case's provenance.json. Without it such a case fails with MixedPatientsError.",
        ),
    ] = False,
) -> None:
    """Analyse every case folder under ROOT in parallel; resumable (unchanged cases are skipped)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from followup.batch import CaseOutcome, run_batch

    params = _pipeline_params(engine, uncertainty)
    if not root.is_dir():
        raise NoImagesFoundError(f"{root}: no such folder")
    total = len(case_folders(root))
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("cases", total=total)

        def show(outcome: CaseOutcome, skipped: bool) -> None:
            state = "skipped (unchanged)" if skipped else outcome.status
            colour = {"failed": "red", "done": "green"}.get(outcome.status, "dim")
            line = f"[{colour}]{escape(outcome.case_id)}: {state}[/] ({outcome.seconds:.0f} s)"
            if outcome.error:
                line += f" - {escape(outcome.error)}"
            bar.console.print(line, soft_wrap=True)
            bar.update(task, advance=1)

        summary = run_batch(
            root,
            out,
            workers=workers,
            scheduler=scheduler,
            database_url=database,
            on_outcome=show,
            params=params,
            allow_mixed_patients=allow_mixed_patients,
        )
    console.print(
        f"{total} cases: {summary.n_done} analysed, {summary.n_skipped} unchanged, "
        f"{summary.n_failed} failed in {summary.seconds:.0f} s; cohort table {out / 'cohort.tsv'}",
        markup=False,
    )
    if summary.n_failed:
        raise typer.Exit(code=1)


def _print_sessions(rows: list[dict[str, object]]) -> None:
    table = Table(title="lesion course", title_justify="left")
    for column in (
        "session",
        "day",
        "FLAIR mL",
        "DWI mL",
        "FLAIR n",
        "DWI n",
        "rADC",
        "FLAIR-lesion rADC",
    ):
        table.add_column(column, justify="right")

    def cell(value: object) -> str:
        if value in (None, "") or (isinstance(value, float) and value != value):
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    for row in rows:
        table.add_row(
            escape(str(row["session_id"])),
            cell(row["day"]),
            cell(row.get("flair_lesion_volume_ml")),
            cell(row.get("dwi_lesion_volume_ml")),
            cell(row.get("flair_lesion_count")),
            cell(row.get("dwi_lesion_count")),
            cell(row.get("radc")),
            cell(row.get("flair_lesion_radc")),
        )
    console.print(table)


def _sample_root() -> Path:
    for candidate in (
        Path.cwd() / "sample_scans",
        Path(__file__).resolve().parents[1] / "sample_scans",
    ):
        if candidate.is_dir():
            return candidate
    raise ImagingError(
        "sample_scans/ not found next to the working directory or the installed package; run "
        "`make samples` in the repository to rebuild it"
    )


def _print_clinical(folder: Path, first_mri: date | None) -> None:
    """A few lines on the clinical files of a case: drugs, events, CSF indices."""
    from clinical.course import choose_index_date, place_in_time
    from clinical.csf import csf_indices
    from clinical.record import load_clinical

    record = load_clinical(folder)
    if record is None:
        return
    course = place_in_time(record, first_mri=first_mri, folder=folder)
    index = choose_index_date(course, first_mri=first_mri)
    console.print(
        f"  clinical files: {', '.join(record.files)}; day 0 = {index.on} ({index.rule})",
        markup=False,
    )
    for drug in course.drugs:
        given = course.given(drug)
        console.print(
            f"  {drug}: {len(given)} administrations, day {index.day(given[0].at)} to "
            f"{index.day(given[-1].at)}, {sum(a.dose_mg for a in given) / 1000:.1f} g in all",
            markup=False,
        )
    for event in course.events:
        console.print(f"  day {index.day(event.at)}: {event.kind} - {event.label}", markup=False)
    for item in csf_indices(course):
        if item.measure.endswith("index"):
            console.print(f"  CSF {item.sample_date}: {item.reading}", markup=False)


@app.command()
@_reports_errors
def report(
    case: Annotated[Path, typer.Argument(help="An analysed case folder, OUT_DIR/sub-<case>.")],
    out: Annotated[Path, typer.Option("--out", help="The PDF to write.")],
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Day 0: first_mri, first_dose, symptom_onset, admission or drug_stop "
            "(default: the analysis' own).",
        ),
    ] = None,
    pseudonym: Annotated[
        str | None,
        typer.Option(
            "--pseudonym",
            help="De-identify: name the case by this pseudonym, sessions by order, and show no "
            "calendar date (days from the index date only).",
        ),
    ] = None,
) -> None:
    """Write the printable follow-up report of one analysed case (PDF, A4)."""
    from followup.report import write_report
    from followup.results import read_provenance

    if not (case / "provenance.json").is_file() and list(case.glob("sub-*/provenance.json")):
        raise NoImagesFoundError(
            f"{case}: an output folder of several cases; give one case folder, e.g. "
            f"{sorted(case.glob('sub-*'))[0]}"
        )
    read_provenance(case)  # a named error for a half-written or failed output, before drawing
    path = write_report(case, out, index, pseudonym=pseudonym)
    console.print(
        f"report written: {escape(str(path))} ({path.stat().st_size / 1024:.0f} kB)\n"
        f"[dim]{RESEARCH_USE}[/]"
    )


@app.command()
@_reports_errors
def export(
    out_dir: Annotated[Path, typer.Argument(help="An output folder of `analyze` or `batch`.")],
    to: Annotated[Path, typer.Option("--to", help="A new folder for the export.")],
    deidentify: Annotated[
        bool,
        typer.Option(
            "--deidentify",
            help="Pseudonyms for case ids, session labels by order, no dates (days from the index "
            "date remain), no free text, no FHIR bundles or provenance; DICOM SEG objects "
            "de-identified by the DICOM PS3.15 Basic Application Level Confidentiality Profile.",
        ),
    ] = False,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="With --deidentify: where to keep the pseudonym key (outside --to); without it "
            "no key is kept and the pseudonyms cannot be traced back.",
        ),
    ] = None,
) -> None:
    """Export the cohort and case tables as TSV and Parquet, and the DICOM SEG objects (optionally
    de-identified)."""
    from followup.export import export_outputs

    summary = export_outputs(out_dir, to, deidentify=deidentify, key_file=key)
    console.print(
        f"exported {len(summary.cases)} cases, {summary.tables} tables (TSV and Parquet) and "
        f"{summary.dicom} DICOM SEG objects to {to}" + (" (de-identified)" if deidentify else ""),
        markup=False,
    )
    if deidentify:
        console.print(
            f"pseudonym key kept in {key}: keep it apart from the export"
            if key is not None
            else "no pseudonym key kept (--key): the pseudonyms cannot be traced back to the "
            "cases, now or later",
            markup=False,
        )


CaseFolder = Annotated[Path, typer.Argument(help="An analysed case folder, OUT_DIR/sub-<case>.")]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Store URL (default: $LEUKOTRACK_DATABASE_URL, else OUT_DIR/leukotrack.sqlite).",
    ),
]


def _point(text: str) -> tuple[float, float, float]:
    """``x,y,z`` in mm (baseline space, RAS+)."""
    from clinical.tables import parse_number

    parts = text.split(",")
    try:
        if len(parts) != 3:
            raise ValueError("three numbers needed")
        x, y, z = (parse_number(p) for p in parts)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r}: give x,y,z in mm, e.g. -23.1,-1.9,23.4") from error
    return (x, y, z)


@app.command()
@_reports_errors
def correct(
    case: CaseFolder,
    session: Annotated[str, typer.Option("--session", help="The session, ses-<label>.")],
    source: Annotated[str, typer.Option("--source", help="flair or dwi.")],
    action: Annotated[
        str,
        typer.Option(
            "--action",
            help="erase (the lesion at --at), paint (a sphere of --radius at --at), grow (the "
            "bright region around --at, within --radius) or reject (the session's source).",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the audit trail.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="x,y,z in mm, baseline space (the viewer's readout)."),
    ] = None,
    radius: Annotated[float | None, typer.Option("--radius", help="mm (paint, grow).")] = None,
    lesion: Annotated[str, typer.Option("--lesion", help="The lesion id seen (audit).")] = "",
    author: Annotated[str | None, typer.Option("--author", help="Default: your login.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Correct the lesions of one session (the automatic result is kept; `undo` takes it back)."""
    import getpass

    from followup.corrections import LesionEdit, apply_edit
    from followup.results import read_provenance
    from followup.store import Store

    read_provenance(case)  # a named error for a folder that is not a finished analysis

    edit = LesionEdit(
        session_id=session,
        source=source.lower(),
        action=action.lower(),
        author=author or getpass.getuser(),
        reason=reason,
        point_mm=_point(at) if at else None,
        radius_mm=radius,
        lesion_id=lesion,
    )
    store = Store(case.parent, database)
    try:
        result = apply_edit(store, case, edit)
    finally:
        store.close()
    done = result.edits[-1]
    console.print(
        f"{session} {source.upper()} {action}: {done.volume_before_ml} -> "
        f"{done.volume_after_ml if done.volume_after_ml is not None else 'rejected'} mL; "
        f"{case.name} re-derived in {result.seconds:.1f} s (corrected)",
        markup=False,
    )


@app.command()
@_reports_errors
def undo(
    case: CaseFolder,
    author: Annotated[str | None, typer.Option("--author", help="Default: your login.")] = None,
    database: DatabaseOption = None,
) -> None:
    """Undo the newest correction of a case (the audit keeps it, marked undone)."""
    import getpass

    from followup.corrections import undo_last
    from followup.results import read_provenance
    from followup.store import Store

    read_provenance(case)

    store = Store(case.parent, database)
    try:
        result = undo_last(store, case, author or getpass.getuser())
    finally:
        store.close()
    if result is None:
        console.print(f"{case.name} has no correction to undo", markup=False)
        return
    active = sum(e.active for e in result.edits)
    console.print(
        f"undone; {case.name} re-derived in {result.seconds:.1f} s, {active} correction(s) left",
        markup=False,
    )


@app.command()
@_reports_errors
def audit(
    case: CaseFolder,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the audit as TSV here (default: print).")
    ] = None,
) -> None:
    """The audit trail of a case's corrections: who, when, why, where, before/after."""
    from followup.corrections import CORRECTION_COLUMNS, read_corrections
    from followup.results import read_provenance
    from followup.tsv import write_tsv
    from safeio import atomic_file

    read_provenance(case)
    rows = read_corrections(case)
    if out is not None:
        with atomic_file(out) as work:
            write_tsv(work, rows, CORRECTION_COLUMNS)
        console.print(f"{len(rows)} edit(s) written to {out}", markup=False)
        return
    if not rows:
        console.print(f"{case.name}: no correction (the automatic result)", markup=False)
        return
    table = Table(title=f"{case.name}: corrections")
    for column in ("at_utc", "author", "session_id", "source", "action", "lesion_id", "status"):
        table.add_column(column)
    table.add_column("before -> after mL")
    table.add_column("reason")
    for row in rows:
        table.add_row(
            *(escape(row[c]) for c in ("at_utc", "author", "session_id", "source", "action")),
            escape(row["lesion_id"]),
            escape(row["status"]),
            f"{row['volume_before_ml']} -> {row['volume_after_ml'] or '-'}",
            escape(row["reason"]),
        )
    console.print(table)


#: Server settings of `leukotrack dashboard`: local-only, XSRF on, no usage statistics, no
#: tracebacks in the browser, small uploads (the dashboard reads local folders, it takes no uploads).
SAFE_SERVER_OPTIONS = {
    "server.headless": "true",
    "server.enableXsrfProtection": "true",
    "server.enableCORS": "true",
    "server.maxUploadSize": "25",
    "server.maxMessageSize": "200",
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "browser.gatherUsageStats": "false",
    "client.showErrorDetails": "none",
    "client.toolbarMode": "viewer",
    "global.developmentMode": "false",
    # no full garbage collection after every run: with plotly, pandas and SQLAlchemy loaded it takes
    # 100-200 ms, which every slice change would wait for (the arrays are freed by refcount anyway)
    "runner.postScriptGC": "false",
    "theme.base": "light",
}


def dashboard_command(data: Path, host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The `streamlit run` command line of the dashboard on ``data`` (safe settings)."""
    script = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    options = {**SAFE_SERVER_OPTIONS, "server.address": host, "server.port": str(port)}
    return [
        sys.executable,
        "-m",
        "dashboard.server",  # `streamlit run`, with the heavy imports done before the first page
        str(script),
        *(f"--{key}={value}" for key, value in options.items()),
    ]


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _serve(
    data: Path, host: str, port: int, open_browser: bool, import_root: Path | None = None
) -> None:
    import os
    import subprocess
    import webbrowser

    if not data.is_dir():
        raise NoImagesFoundError(
            f"{data}: no such folder; analyse cases into it first (`leukotrack batch ROOT --out {data}`)"
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[yellow]Serving on {escape(host)}: other computers on the network can reach the dashboard. "
            "It has no login; put it behind an authenticating proxy.[/]"
        )
    if not _port_free(host, port):
        busy, port = port, _free_port(host)
        console.print(f"[yellow]Port {busy} is in use; serving on {port} instead.[/]")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(
        f"[bold]leukotrack dashboard[/] on {escape(str(data))}\n  open {escape(url)}  "
        f"(Ctrl+C stops it)\n[dim]{RESEARCH_USE}[/]"
    )
    environment = {**os.environ, "LEUKOTRACK_DATA": str(data.resolve())}
    if import_root is not None:
        if not import_root.is_dir():
            raise NoImagesFoundError(f"--import-root {import_root}: no such folder")
        environment["LEUKOTRACK_IMPORT_ROOT"] = str(import_root.resolve())
    process = subprocess.Popen(dashboard_command(data, host, port), env=environment)
    if open_browser and (os.environ.get("DISPLAY") or sys.platform in ("darwin", "win32")):
        webbrowser.open(url)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=10)


@app.command()
@_reports_errors
def dashboard(
    data: Annotated[
        Path, typer.Option("--data", help="An output folder of `leukotrack analyze` or `batch`.")
    ] = Path("out"),
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on (default: this computer only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8501,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open a browser tab when there is a screen.")
    ] = True,
    import_root: Annotated[
        Path | None,
        typer.Option(
            "--import-root",
            help="The folder whose case folders the Import page may list and analyse (default: "
            "the folder that holds --data).",
        ),
    ] = None,
) -> None:
    """Serve the Streamlit dashboard on this computer (127.0.0.1) for an output folder."""
    _serve(data, host, port, open_browser, import_root)


def _demo_out() -> Path:
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "leukotrack" / "demo"


@app.command()
@_reports_errors
def demo(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where the demo's results go (default: ~/.cache/leukotrack/demo)."
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Open the dashboard afterwards (default: yes)."),
    ] = True,
    port: Annotated[int, typer.Option("--port", help="Port of the dashboard.")] = 8501,
) -> None:
    """Analyse the bundled sample cases (once; unchanged cases are kept) and open the dashboard."""
    from followup.batch import run_batch

    root = _sample_root()
    out = out or _demo_out()
    console.print(
        f"[bold]leukotrack demo[/] on {escape(str(root))} -> {escape(str(out))}\n[dim]{RESEARCH_USE}[/]"
    )
    for folder in case_folders(root):
        first = None
        try:
            case = scan_case(folder)
            first = case.sessions[0].study_date if case.sessions else None
            console.print(
                f"\n[bold]case {escape(case.case_id)}[/]: {len(case.sessions)} sessions "
                f"({case.layout})"
            )
        except NoImagesFoundError:
            console.print(f"\n[bold]case {escape(folder.name)}[/]: no images, clinical files only")
        _print_clinical(folder, first)
    console.print("\nanalysing (about a minute the first time; unchanged cases are kept)")

    def show(outcome: Any, skipped: bool) -> None:
        state = "unchanged, kept" if skipped else outcome.status
        console.print(f"  {outcome.case_id}: {state} ({outcome.seconds:.0f} s)", markup=False)

    summary = run_batch(root, out, workers=0, on_outcome=show)
    if summary.n_failed:
        raise ImagingError(f"{summary.n_failed} sample case(s) failed; see the lines above")
    for case_dir in sorted(out.glob("sub-*")):
        sessions = case_dir / "sessions.tsv"
        if sessions.is_file():
            import csv

            with sessions.open() as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
            if rows:
                console.print(f"\n[bold]{escape(case_dir.name)}[/]")
                _print_sessions([{k: _number(v) for k, v in row.items()} for row in rows])
    if serve:
        _serve(out, "127.0.0.1", port, open_browser=True, import_root=root)
    else:
        console.print(
            f"\nResults in {out}; `leukotrack dashboard --data {out}` shows them.", markup=False
        )


def _number(text: str) -> object:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


if __name__ == "__main__":
    app()
