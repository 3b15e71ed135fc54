"""Viewer: sessions (rows) by DWI, ADC and FLAIR (columns), all cut at one position in baseline space.

Every image was resampled onto the baseline grid by the analysis, so one slice index is the same
tissue in every cell. Two modes:

* **interactive** (default): NiiVue panels in the browser (:mod:`dashboard.niivue`), linked
  crosshair, slice and zoom; wheel, drag window/level, ruler, ROI statistics and the pixel readout
  run without a server round trip;
* **static images**: the server-rendered grid (PNG) of one plane; its slice controls and the grid run
  in a fragment, from volumes decoded once per process. It needs no WebGL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.niivue import (
    ViewerOverlay,
    ViewerPanel,
    ViewerRow,
    linked_viewer,
    native_volume,
    publish,
    publish_mask,
)
from dashboard.state import TARGET_KEY, case_in_view, current_index, framed
from dashboard.views.correct import corrections, take_pick
from followup.intervals import (
    SESSION_CHANGES,
    WITHIN_NOISE,
    WITHIN_NOISE_TEXT,
    interval_text,
    label_of,
    value_text,
)
from followup.results import CaseOutputs, drug_states, finite, lesions_of, marked_labels
from imaging.display import (
    DWI_RGB,
    FLAIR_RGB,
    PLANES,
    RESOLVED_RGB,
    Overlay,
    Plane,
    Volume,
    Window,
    annotate,
    compose,
    crosshair,
    png_bytes,
    presets,
    side_by_side,
)
from imaging.track import CHANGE_CODES

__all__ = ["show"]

SEQUENCES = ("DWI", "ADC", "FLAIR")
POS_KEY, PLANE_KEY, FOCUS_KEY = "viewer_mm", "viewer_plane", "viewer_focus"
MODE_KEY = "viewer_mode"
INTERACTIVE, STATIC = "Interactive (NiiVue)", "Static images"
GRID, PRIOR_CURRENT, NATIVE = "Sessions x sequences", "Prior / current", "Native series"
UNITS = {"ADC": ("um2/s", 0), "DWI": ("a.u.", 0), "FLAIR": ("a.u.", 0)}


@dataclass(frozen=True)
class Settings:
    """The display choices of one run of the viewer."""

    plane: Plane
    sessions: tuple[str, ...]
    windows: dict[str, Window]
    overlay: bool
    opacity: float
    outline: bool
    both_sources: bool
    cross: bool
    cell_px: int
    index_label: str = "first MRI"
    day_offset: int = 0


def _largest_lesion_mm(lesions: pd.DataFrame, session: str | None) -> np.ndarray | None:
    """Centroid (RAS mm, baseline space) of the largest lesion of ``session`` (else of any)."""
    if lesions.empty:
        return None
    rows = lesions if session is None else lesions[lesions["session_id"] == session]
    rows = rows.dropna(subset=["volume_ml", "centroid_x_mm"])
    if rows.empty:
        return None
    best = rows.iloc[int(np.argmax(pd.to_numeric(rows["volume_ml"]).to_numpy()))]
    return np.array([best["centroid_x_mm"], best["centroid_y_mm"], best["centroid_z_mm"]], float)


def _reference(outputs: CaseOutputs) -> Volume | None:
    for session in outputs.session_ids:
        for kind in ("FLAIR", "DWI", "ADC"):
            found = data.volume(outputs.image_path(session, kind))
            if found is not None:
                return found
    return None


def _apply_target(outputs: CaseOutputs, grid: Volume) -> None:
    """Take a request from another page (session to open, position to centre on)."""
    target = st.session_state.pop(TARGET_KEY, None)
    if st.session_state.get("viewer_case") != outputs.case_id:
        st.session_state.pop("viewer_sessions", None)
    if not target or target.get("case") != outputs.case_id:
        if (
            POS_KEY not in st.session_state
            or st.session_state.get("viewer_case") != outputs.case_id
        ):
            start = _largest_lesion_mm(outputs.lesions, None)
            st.session_state[POS_KEY] = tuple(start if start is not None else grid.centre_mm())
            st.session_state["viewer_case"] = outputs.case_id
            st.session_state.pop(FOCUS_KEY, None)
        return
    st.session_state["viewer_case"] = outputs.case_id
    session = target.get("session")
    if session:
        st.session_state[FOCUS_KEY] = session
        # the opened session with the one before it: the comparison a reader makes first
        order = outputs.session_ids
        at = order.index(session) if session in order else 0
        st.session_state["viewer_sessions"] = order[max(at - 1, 0) : at + 1]
    if target.get("mm") is not None:
        st.session_state[POS_KEY] = tuple(target["mm"])
    elif session:
        centre = _largest_lesion_mm(outputs.lesions, session)
        if centre is not None:
            st.session_state[POS_KEY] = tuple(centre)


def _window_controls(outputs: CaseOutputs) -> dict[str, Window]:
    """Preset (or custom) window per sequence, shared by all sessions (a window/level lock)."""
    windows: dict[str, Window] = {}
    baseline = outputs.session_ids[0]
    with st.expander("Window / level", expanded=False):
        columns = st.columns(3)
        for column, sequence in zip(columns, SEQUENCES, strict=True):
            volume = data.volume(outputs.image_path(baseline, sequence))  # type: ignore[arg-type]
            choices = presets(sequence, volume)
            names = [*choices, "custom"]
            name = column.selectbox(f"{sequence} window", names, key=f"viewer_preset_{sequence}")
            if name == "custom":
                default = next(iter(choices.values()))
                centre = column.number_input(
                    f"{sequence} level (centre)",
                    value=float(round(default.center, 1)),
                    key=f"viewer_c_{sequence}",
                )
                width = column.number_input(
                    f"{sequence} width",
                    value=float(round(default.width, 1)),
                    min_value=1e-3,
                    key=f"viewer_w_{sequence}",
                )
                windows[sequence] = Window(centre, width)
            else:
                windows[sequence] = choices[name]
        st.caption("ADC windows are in um2/s. One window per sequence applies to every session.")
    return windows


def _settings(outputs: CaseOutputs) -> Settings:
    st.radio(
        "Viewer",
        [INTERACTIVE, STATIC],
        horizontal=True,
        key=MODE_KEY,
        help="Interactive: NiiVue in the browser (needs WebGL). Static: server-rendered images.",
    )
    top = st.columns([1.3, 2.2, 1, 1.2, 1])
    plane = top[0].radio("Plane", ["axial", "coronal", "sagittal"], horizontal=False, key=PLANE_KEY)
    available = outputs.session_ids
    chosen = [s for s in st.session_state.get("viewer_sessions", available) if s in available]
    st.session_state["viewer_sessions"] = chosen
    sessions = top[1].multiselect("Sessions (rows)", available, key="viewer_sessions")
    overlay = top[2].toggle("Lesions", value=True, key="viewer_overlay")
    outline = top[2].toggle("Outline only", value=True, key="viewer_outline")
    opacity = top[3].slider(
        "Opacity", 0.0, 1.0, 0.45, 0.05, key="viewer_opacity", disabled=not overlay
    )
    both = top[3].checkbox("FLAIR and DWI lesions on every image", key="viewer_both")
    cross = top[4].checkbox("Crosshair", value=True, key="viewer_cross")
    cell_px = top[4].select_slider(
        "Image size", [160, 200, 260, 340, 440], value=200, key="viewer_px"
    )
    return Settings(
        plane=plane,  # type: ignore[arg-type]
        sessions=tuple(s for s in available if s in sessions),
        windows=_window_controls(outputs),
        overlay=overlay,
        opacity=opacity,
        outline=outline,
        both_sources=both,
        cross=cross,
        cell_px=int(cell_px),
    )


def _move_to_slice(grid_key: str, plane: Plane) -> None:
    """Slider callback: put the shared position on the chosen slice of ``plane``."""
    grid: Volume = st.session_state[grid_key]
    voxel = grid.to_voxel(np.array(st.session_state[POS_KEY]))
    voxel[PLANES[plane]] = int(st.session_state[f"viewer_slice_{plane}"]) - 1
    st.session_state[POS_KEY] = tuple(grid.to_world(voxel))


def _step(grid_key: str, plane: Plane, by: int) -> None:
    grid: Volume = st.session_state[grid_key]
    voxel = grid.to_voxel(np.array(st.session_state[POS_KEY]))
    axis = PLANES[plane]
    voxel[axis] = min(max(round(voxel[axis]) + by, 0), grid.shape[axis] - 1)
    st.session_state[POS_KEY] = tuple(grid.to_world(voxel))
    # move the slider here, in the callback: set in the fragment's body instead, the new value
    # would come back from the browser and run the fragment a second time
    st.session_state[f"viewer_slice_{plane}"] = int(voxel[axis]) + 1


def _row_parts(outputs: CaseOutputs, session: str, offset: int) -> list[str]:
    """What is said of a session beside its images: id, day, date, volumes with their 95 %
    interval and their change from the previous session where the analysis wrote them, rADC,
    drug state."""
    row = outputs.sessions[outputs.sessions["session_id"] == session].iloc[0]
    day = finite(row.get("day"))
    parts = [
        session,
        f"day {int(day) + offset}" if day is not None else "",
        str(row.get("study_date", "")),
    ]
    said: dict[str, str] = {}
    for kind in ("corrected", "rejected"):
        cell = row.get(kind)
        if isinstance(cell, str):  # empty cells read as NaN
            said.update(dict.fromkeys([s for s in cell.split(";") if s], kind))
    for column, name in (("flair_lesion_volume_ml", "FLAIR"), ("dwi_lesion_volume_ml", "DWI")):
        value = finite(row.get(column))
        state = said.get(name.lower())
        if state == "rejected":
            parts.append(f"{name} rejected by a reader")
        elif value is not None:
            # short lines (the label column stays as narrow as the drug lines): the value with
            # its interval, then the change and whether it is beyond the measurement noise
            span = interval_text(row, column)
            parts.append(
                f"{name} {value:.2f} mL"
                + (" (corrected)" if state else "")
                + (f" ({span})" if span else "")
            )
            change_column, label_column = SESSION_CHANGES[column]
            change, label = finite(row.get(change_column)), label_of(row, label_column)
            if change is not None and label:
                noise = "within noise" if label == WITHIN_NOISE else "beyond noise"
                parts.append(f"{name} change {change:+.2f} mL, {noise}")
    if finite(row.get("radc")) is not None:
        parts.append(f"rADC {value_text(row, 'radc')}")
    return [p for p in [*parts, *drug_states(row)] if p]


def _row_label(outputs: CaseOutputs, session: str, offset: int, focus: str | None) -> str:
    """The row label as markdown (the static grid)."""
    first, *rest = _row_parts(outputs, session, offset)
    text = "  \n".join([f"**{first}**", *rest])
    return f":red-background[opened]  \n{text}" if session == focus else text


def _row_text(outputs: CaseOutputs, session: str, offset: int, focus: str | None) -> str:
    """The row label as plain text (the browser panels)."""
    text = "\n".join(_row_parts(outputs, session, offset))
    return f"[opened]\n{text}" if session == focus else text


@st.fragment
def _grid(outputs: CaseOutputs, settings: Settings, grid_key: str) -> None:
    """Slice slider and the image grid (reruns alone when the slice changes)."""

    grid: Volume = st.session_state[grid_key]
    plane = settings.plane
    axis = PLANES[plane]
    position = np.array(st.session_state[POS_KEY])
    index = grid.slice_index(plane, position)
    slider_key = f"viewer_slice_{plane}"
    if st.session_state.get(slider_key) != index + 1:
        st.session_state[slider_key] = index + 1
    left, middle, right = st.columns([1, 14, 1])
    left.button(
        "◀", key="viewer_prev", on_click=_step, args=(grid_key, plane, -1), help="previous slice"
    )
    middle.slider(
        f"{plane.capitalize()} slice (of {grid.shape[axis]}, baseline space)",
        1,
        grid.shape[axis],
        key=slider_key,
        on_change=_move_to_slice,
        args=(grid_key, plane),
    )
    right.button(
        "▶", key="viewer_next", on_click=_step, args=(grid_key, plane, 1), help="next slice"
    )
    label, offset = settings.index_label, settings.day_offset
    focus = st.session_state.get(FOCUS_KEY)
    marked = marked_labels(outputs.lesions)
    st.markdown(f"Columns: **{' | '.join(SEQUENCES)}**; day 0 = {label}")
    for session in settings.sessions:
        cells = st.columns([1.1, 9])
        cells[0].markdown(_row_label(outputs, session, offset, focus))
        labels = {
            source: data.volume(outputs.image_path(session, f"{source}_lesions"), labels=True)  # type: ignore[arg-type]
            for source in ("flair", "dwi")
        }
        row = []
        for sequence in SEQUENCES:
            image = data.volume(outputs.image_path(session, sequence))  # type: ignore[arg-type]
            overlays: list[Overlay] = []
            if settings.overlay:
                sources = (
                    ("flair", "dwi")
                    if settings.both_sources
                    else (("flair",) if sequence == "FLAIR" else ("dwi",))
                )
                for source in sources:
                    volume = labels[source]
                    if volume is not None:
                        overlays.append(
                            Overlay(
                                volume,
                                FLAIR_RGB if source == "flair" else DWI_RGB,
                                marked.get((session, source), frozenset()),
                            )
                        )
            cell = compose(
                image,
                plane,
                index,
                settings.windows[sequence],
                overlays,
                opacity=settings.opacity,
                outline=settings.outline,
                reference=grid,
            )
            if settings.cross:
                cell = crosshair(cell, grid, plane, position)
            row.append(annotate(cell, sequence if image is not None else f"{sequence}: none"))
        cells[1].image(png_bytes(side_by_side(row)), width=3 * settings.cell_px)
    x, y, z = position
    st.caption(
        f"Position (RAS, baseline space): x {x:.1f}, y {y:.1f}, z {z:.1f} mm. Radiological convention "
        "(patient's right on the left). Orange: FLAIR lesions; cyan: DWI lesions; red outline: new or "
        "enlarging since the previous session."
    )


def _dwi_caption(outputs: CaseOutputs, session: str) -> str:
    found = outputs.provenance.get("sessions", {}).get(session, {}).get("dwi_input", {})
    b_value = finite(found.get("trace_b_value_s_mm2")) if isinstance(found, dict) else None
    return f"DWI b={b_value:.0f}" if b_value is not None else "DWI trace"


def _session_window(settings: Settings, sequence: str, path: Path) -> Window:
    """The starting window of one session's image: the chosen preset measured on *that* image for
    DWI and FLAIR (their units are arbitrary and their levels change from session to session: a
    late T2 shine-through saturates under the first session's window), the chosen window itself for
    ADC (um2/s) or a custom one. "Match W/L" in the viewer then gives one window to all sessions."""
    name = st.session_state.get(f"viewer_preset_{sequence}")
    if sequence == "ADC" or name in (None, "custom"):
        return settings.windows[sequence]
    own = presets(sequence, data.volume(path))
    return own.get(str(name), settings.windows[sequence])


def _outline_plane(settings: Settings) -> str | None:
    """The plane whose outlines overlays show, None when they are drawn filled."""
    return settings.plane if settings.outline else None


def _resolved(outputs: CaseOutputs, session: str, source: str) -> list[tuple[str, str]]:
    """The lesions of ``source`` that resolved at ``session`` (gone since the session before), as
    ``(lesion_id, change_beyond_noise)``."""
    rows = lesions_of(outputs.lesions, session, source)
    if rows.empty:
        return []
    gone = rows.loc[rows["change"] == "resolved"]
    labels = gone["change_beyond_noise"] if "change_beyond_noise" in gone else [""] * len(gone)
    return [
        (str(name), str(label) if isinstance(label, str) else "")
        for name, label in zip(gone["lesion_id"], labels, strict=True)
    ]


def resolved_caption(resolved: list[tuple[str, str]]) -> str:
    """The caption's note of resolved lesions, marked green: ``resolved (D001, D002, green)``; one
    whose loss is within measurement noise (not found again, though its image may still hold it)
    says so: ``resolved (D001, D004 within measurement noise, green)``."""
    if not resolved:
        return ""
    names = [
        f"{name} {WITHIN_NOISE_TEXT}" if label == WITHIN_NOISE else name for name, label in resolved
    ]
    return f" · resolved ({', '.join([*names, 'green'])})"


def _panel(
    outputs: CaseOutputs,
    settings: Settings,
    marked: dict[tuple[str, str], frozenset[int]],
    session: str,
    sequence: str,
    place: tuple[str, str],
) -> ViewerPanel | None:
    """One NiiVue panel at ``place`` (row, column): the session's image of ``sequence`` with its
    lesion outlines; ``marked`` = :func:`marked_labels` of the case."""
    path = outputs.image_path(session, sequence)  # type: ignore[arg-type]
    if path is None:
        return None
    window = _session_window(settings, sequence, path)
    sources = (
        ("flair", "dwi")
        if settings.both_sources
        else (("flair",) if sequence == "FLAIR" else ("dwi",))
    )
    overlays = []
    for source in sources if settings.overlay else ():
        lesion_path = outputs.image_path(session, f"{source}_lesions")  # type: ignore[arg-type]
        if lesion_path is not None:
            colormap = "orange" if source == "flair" else "cyan"
            overlays.append(
                ViewerOverlay(  # outlines drawn opaque, filled lesions at the chosen opacity
                    publish_mask(lesion_path, outline=_outline_plane(settings)),
                    f"{source}_lesions.nii.gz",
                    colormap,
                    1.0 if settings.outline else settings.opacity,
                    rgb=FLAIR_RGB if source == "flair" else DWI_RGB,
                )
            )
    own = "flair" if sequence == "FLAIR" else "dwi"
    change = outputs.image_path(session, f"{own}_change")  # type: ignore[arg-type]
    resolved = _resolved(outputs, session, own)
    if settings.overlay and change is not None and resolved:  # where they were, in green
        overlays.append(
            ViewerOverlay(
                publish_mask(
                    change, code=CHANGE_CODES["disappeared"], outline=_outline_plane(settings)
                ),
                f"{own}_resolved.nii.gz",
                "green",
                1.0 if settings.outline else settings.opacity,
                rgb=RESOLVED_RGB,
            )
        )
    unit, digits = UNITS[sequence]
    caption = _dwi_caption(outputs, session) if sequence == "DWI" else sequence
    if marked.get((session, own)):
        caption += " · new/enlarging"
    caption += resolved_caption(resolved)
    return ViewerPanel(
        id=f"{session}:{sequence}",
        row=place[0],
        column=place[1],
        url=publish(path),
        name=path.name,
        title=f"{session} {sequence}",
        caption=caption,
        window=(window.center - window.width / 2, window.center + window.width / 2),
        unit=unit,
        digits=digits,
        overlays=tuple(overlays),
        group=sequence,
    )


def _linked(outputs: CaseOutputs, settings: Settings) -> None:
    """The interactive viewer: one NiiVue panel per session and sequence, all linked.

    Layouts: the Figure-1 grid (the chosen sessions in rows, DWI | ADC | FLAIR in columns), or prior
    / current (two sessions side by side, a sequence per row, larger panels).
    """
    focus = st.session_state.get(FOCUS_KEY)
    offset = settings.day_offset
    marked = marked_labels(outputs.lesions)
    layout = st.radio(
        "Layout",
        [GRID, PRIOR_CURRENT, NATIVE],
        horizontal=True,
        key="viewer_layout",
        help="Prior / current: the chosen session beside the one before it. Native series: one "
        "series as acquired (its own grid, not resampled), with the lesions found on it.",
    )
    if layout == NATIVE:
        _native(outputs, settings)
        return
    panels: list[ViewerPanel] = []
    rows: list[ViewerRow] = []
    columns: list[str]
    if layout == PRIOR_CURRENT and len(outputs.session_ids) >= 2:
        order = outputs.session_ids
        default = focus if focus in order[1:] else order[-1]
        current = st.selectbox(
            "Current session", order[1:], index=order[1:].index(default), key="viewer_current"
        )
        prior = order[order.index(current) - 1]
        columns = [
            f"prior: {_row_text(outputs, prior, offset, None)}",
            f"current: {_row_text(outputs, current, offset, None)}",
        ]
        for sequence in SEQUENCES:
            rows.append(ViewerRow(sequence, sequence))
            for session, column in zip((prior, current), columns, strict=True):
                panel = _panel(outputs, settings, marked, session, sequence, (sequence, column))
                if panel is not None:
                    panels.append(panel)
        panel_px = max(settings.cell_px, 300)
    else:
        for session in settings.sessions:
            rows.append(ViewerRow(session, _row_text(outputs, session, offset, focus)))
            for sequence in SEQUENCES:
                panel = _panel(outputs, settings, marked, session, sequence, (session, sequence))
                if panel is not None:
                    panels.append(panel)
        # a sequence no session has (a FLAIR-only case) gets no column of empty cells
        columns = [c for c in SEQUENCES if any(p.column == c for p in panels)]
        panel_px = settings.cell_px
    position = st.session_state.get(POS_KEY)
    picked = linked_viewer(
        panels,
        rows,
        columns,
        position_mm=tuple(position) if position is not None else None,
        plane=settings.plane,
        panel_px=panel_px,
        outline=settings.outline,
        key=f"viewer_linked_{outputs.case_id}",
    )
    if isinstance(picked, dict) and picked.get("mm"):
        take_pick(picked)
    st.caption(
        f"Day 0 = {settings.index_label}. Radiological convention (patient's right on the left); "
        "orientation letters on every panel. Click: crosshair (all panels follow); wheel: slices; "
        "right-drag: window/level, or pan, ruler or ROI box (toolbar); Pan/zoom mode: wheel zooms. ADC in "
        "um2/s. Orange: FLAIR lesions; cyan: DWI lesions; green: where lesions that resolved were."
    )


def _native(outputs: CaseOutputs, settings: Settings) -> None:
    """One original series of one session, on its own grid, with the lesions found on that grid."""
    left, right = st.columns(2)
    session = left.selectbox("Session", outputs.session_ids, key="viewer_native_session")
    sequence = right.selectbox("Series", list(SEQUENCES), key="viewer_native_sequence")
    sources = outputs.provenance.get("sessions", {}).get(session, {}).get("sources", {})
    recorded = sources.get(sequence.lower()) if isinstance(sources, dict) else None
    if not recorded:
        st.info(f"{session} has no {sequence} series.")
        return
    try:
        url, what = native_volume(Path(recorded))
    except FileNotFoundError as error:
        st.info(f"The original {sequence} series cannot be shown: {error}.")
        return
    mask = outputs.image_path(
        session, "flair_orig_mask" if sequence == "FLAIR" else "dwi_orig_mask"
    )
    window = settings.windows[sequence]
    unit, digits = UNITS[sequence]
    overlays: tuple[ViewerOverlay, ...] = ()
    if settings.overlay and mask is not None:
        colormap = "orange" if sequence == "FLAIR" else "cyan"
        overlays = (
            ViewerOverlay(
                publish_mask(mask, outline=_outline_plane(settings)),
                mask.name,
                colormap,
                1.0 if settings.outline else settings.opacity,
                rgb=FLAIR_RGB if sequence == "FLAIR" else DWI_RGB,
            ),
        )
    panel = ViewerPanel(
        id=f"{session}:{sequence}:native",
        row=session,
        column=f"{sequence}, as acquired",
        url=url,
        name=f"{session}_{sequence}_native.nii.gz",  # NiiVue reads the format from the name
        title=f"{session} {sequence} (native)",
        caption=f"{sequence} native: {what}",
        window=(window.center - window.width / 2, window.center + window.width / 2),
        unit=unit,
        digits=digits,
        overlays=overlays,
        group=sequence,
    )
    linked_viewer(
        [panel],
        [ViewerRow(session, _row_text(outputs, session, settings.day_offset, None))],
        [panel.column],
        position_mm=None,  # the series' own space: baseline-space positions do not apply
        plane=settings.plane,
        panel_px=max(2 * settings.cell_px, 500),
        outline=settings.outline,
        key=f"viewer_native_{outputs.case_id}",
    )
    st.caption(
        f"The {sequence} series as the scanner wrote it ({recorded}): its own voxels and slices, "
        "not resampled; lesions as found on this grid. Read the original in PACS for diagnosis."
    )


@framed("Viewer")
def show() -> None:
    """The session x sequence grid of the current case."""
    shown = case_in_view()
    if shown is None:
        return
    case, outputs = shown
    if not outputs.session_ids:
        st.info(f"{case} has no MRI sessions (clinical files only).")
        return
    grid = _reference(outputs)
    if grid is None:
        st.warning(
            f"{case} was analysed by an older leukotrack that did not write the images in baseline "
            "space. Re-run the analysis (Import and run, or `leukotrack batch`) to view it."
        )
        return
    _apply_target(outputs, grid)
    grid_key = f"viewer_grid_{case}"
    st.session_state[grid_key] = grid
    _, index_on, index_label = current_index()
    settings = replace(
        _settings(outputs), index_label=index_label, day_offset=outputs.day_offset(index_on)
    )
    if not settings.sessions:
        st.info("Choose at least one session.")
        return
    if st.session_state.get(MODE_KEY, INTERACTIVE) == INTERACTIVE:
        _linked(outputs, settings)
    else:
        _grid(outputs, settings, grid_key)
    corrections(outputs)
