"""The linked viewer: NiiVue (WebGL) panels in the browser, one per session and sequence.

NiiVue's own UMD build (``static/niivue.umd.js``, version and sha256 in ``static/niivue.sha256``,
rebuilt by ``scripts/vendor_niivue.sh``) and a small script of ours (``static/viewer.js``) make a
Streamlit component with no build step and no network: slices, zoom, pan, window/level, the ruler and
ROI statistics all run in the browser, and the crosshair, slice and zoom of every panel follow the
one the reader moves (NiiVue's ``broadcastTo``).

Streamlit serves a component's files from one folder and refuses links out of it, so the component's
folder is a cache folder of ours (:func:`served_root`): the static files are copied there, and every
volume shown is copied there (atomically) under a name made from its path, size and modification
time. The browser then fetches each volume once, by URL, and caches it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import streamlit.components.v1 as components

from imaging.dicom.series import load_series_folder
from imaging.display import Plane, outline_labels
from imaging.image import MRImage
from imaging.nifti import load_nifti
from safeio.atomic import write_bytes

__all__ = [
    "ViewerOverlay",
    "ViewerPanel",
    "ViewerRow",
    "linked_viewer",
    "native_volume",
    "publish",
    "publish_mask",
    "served_root",
]

STATIC = Path(__file__).parent / "static"
STATIC_FILES = ("index.html", "viewer.js", "viewer.css", "niivue.umd.js")


@dataclass(frozen=True)
class ViewerOverlay:
    """A binary mask drawn over a panel (1 = drawn, in the colour map's top colour), by URL from
    :func:`publish_mask`."""

    url: str
    name: str
    colormap: str
    opacity: float = 0.6
    cal_min: float = 0.5
    cal_max: float = 1.0
    #: Draw in this colour (0-255 each) rather than the colour map's top colour.
    rgb: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class ViewerPanel:
    """One image: a session (``row``) and a sequence (``column``), by URL from :func:`publish`.

    ``window`` is the starting (low, high) display range in the image's ``unit``; ``digits`` the
    decimals of the pixel readout; "Match W/L" gives a window to every panel of the same ``group``
    (the sequence).
    """

    id: str
    row: str
    column: str
    url: str
    name: str
    title: str
    caption: str
    window: tuple[float, float]
    unit: str
    digits: int = 0
    overlays: tuple[ViewerOverlay, ...] = field(default_factory=tuple)
    group: str = ""


@dataclass(frozen=True)
class ViewerRow:
    """A row of panels (a session) and the text beside it."""

    id: str
    label: str


def served_root() -> Path:
    """The folder Streamlit serves the viewer from: ``$LEUKOTRACK_VIEWER_DIR``, else
    ``$XDG_CACHE_HOME/leukotrack/viewer``, else ``~/.cache/leukotrack/viewer``, with the static
    files in it (see :func:`_materialised`)."""
    configured = os.environ.get("LEUKOTRACK_VIEWER_DIR")
    if configured:
        root = Path(configured)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        root = base / "leukotrack" / "viewer"
    return _materialised(root)


@lru_cache(maxsize=4)
def _materialised(root: Path) -> Path:
    """``root`` with its volumes folder and the static files copied in when missing or changed:
    once per process and folder (NiiVue's build is 2.3 MB; every image published asks for the
    root)."""
    (root / "volumes").mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        source, target = STATIC / name, root / name
        content = source.read_bytes()
        if not target.is_file() or target.read_bytes() != content:
            write_bytes(target, content)
    return root


def publish(path: Path, root: Path | None = None) -> str:
    """The URL (relative to the viewer) of ``path``, copied into the served folder.

    The name is a hash of the path, size and modification time, so a re-analysed image gets a new
    URL (the browser does not show a stale cached copy) and an unchanged one is published once.
    """
    root = root or served_root()
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    suffix = ".nii.gz" if path.name.endswith(".gz") else ".nii"
    target = root / "volumes" / (hashlib.sha256(key).hexdigest()[:24] + suffix)
    if not target.is_file():
        write_bytes(target, path.read_bytes())
    return f"volumes/{target.name}"


#: (file, size, mtime, variant, served folder) -> URL of a mask published from it.
_MASKS: dict[tuple[str, int, int, str, str], str] = {}


def publish_mask(
    path: Path, *, outline: str | None = None, code: int | None = None, root: Path | None = None
) -> str:
    """The URL of a binary (0/1, uint8) overlay made of a label or change map: its non-zero voxels,
    or those equal to ``code`` (3: "disappeared" in a change map), reduced to their outlines in the
    slices of the plane ``outline`` (:func:`imaging.display.outline_labels`; a multiplanar view
    takes the axial outline).

    The name is a hash of the mask's own bytes: a map re-written with the same lesions (a reader's
    correction re-derives later sessions, whose identifiers may change) keeps its URL, so the
    browser reloads only the overlays whose lesions did change.
    """
    root = root or served_root()
    stat = path.stat()
    variant = f"outline={outline},code={code}"
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, variant, str(root))
    if key in _MASKS:
        return _MASKS[key]
    image = cast(nib.Nifti1Image, nib.load(path))
    labels = np.asarray(image.dataobj)
    affine = np.asarray(image.affine, np.float64)
    chosen = labels == code if code is not None else labels > 0
    if outline is not None:
        cut: Plane = outline if outline in ("coronal", "sagittal") else "axial"  # type: ignore[assignment]
        chosen = outline_labels(chosen.astype(np.uint8), affine, cut) > 0
    mask = nib.Nifti1Image(chosen.astype(np.uint8), affine)
    mask.set_sform(affine, code=1)
    mask.set_qform(affine, code=1)
    raw = mask.to_bytes()
    target = root / "volumes" / (hashlib.sha256(raw).hexdigest()[:24] + ".nii.gz")
    if not target.is_file():
        write_bytes(target, gzip.compress(raw, compresslevel=1, mtime=0))
    _MASKS[key] = f"volumes/{target.name}"
    return _MASKS[key]


@lru_cache(maxsize=1)
def _declared() -> Any:
    """The component, declared once per process on the served folder."""
    return components.declare_component("leukotrack_viewer", path=str(served_root()))


def linked_viewer(
    panels: list[ViewerPanel],
    rows: list[ViewerRow],
    columns: list[str],
    *,
    position_mm: tuple[float, float, float] | None,
    plane: str = "axial",
    panel_px: int = 220,
    radiological: bool = True,
    outline: bool = True,
    key: str | None = None,
) -> Any:
    """Show ``panels`` as a grid (``rows`` x ``columns``), all linked, centred on ``position_mm``.

    Parameters
    ----------
    panels : list of ViewerPanel
        The images; a (row, column) without a panel shows "no <column>".
    rows, columns : list
        The rows (sessions) and column names (sequences), in display order.
    position_mm : tuple of float, optional
        Starting crosshair position, RAS mm (baseline space).
    plane : {"axial", "coronal", "sagittal", "multiplanar"}
        Starting view of every panel.
    panel_px : int
        Height of each panel, CSS pixels.
    radiological : bool
        Patient's right on the screen's left.
    outline : bool
        Lesion overlays drawn as outlines (the reading default) rather than filled.
    key : str, optional
        Streamlit widget key.
    """
    return _declared()(
        panels=[asdict(p) for p in panels],
        rows=[asdict(r) for r in rows],
        columns=list(columns),
        position_mm=None if position_mm is None else [float(v) for v in position_mm],
        plane=plane,
        panel_px=int(panel_px),
        radiological=bool(radiological),
        outline=bool(outline),
        key=key,
        default=None,
    )


def native_volume(source: Path, root: Path | None = None) -> tuple[str, str]:
    """The URL of a session's original series (a DICOM series folder or a NIfTI file, as the
    analysis recorded it in provenance.json), converted once to NIfTI in the served folder, and a
    short description of what is shown.

    A diffusion series of several volumes shows its highest b-value (the trace the analysis
    segmented), a 4-D series without b-values its last volume.

    Raises
    ------
    FileNotFoundError
        When the source is no longer where the analysis read it.
    """
    root = root or served_root()
    if not source.exists():
        raise FileNotFoundError(f"{source} is no longer there (the analysis read it there)")
    stat = source.stat()
    key = f"native|{source.resolve()}|{stat.st_mtime_ns}".encode()
    name = hashlib.sha256(key).hexdigest()[:24] + ".nii.gz"
    target, described = root / "volumes" / name, root / "volumes" / (name + ".txt")
    if target.is_file() and described.is_file():
        return f"volumes/{name}", described.read_text(encoding="utf-8")
    image = load_series_folder(source) if source.is_dir() else load_nifti(source)
    what = f"{image.spatial_shape[0]} x {image.spatial_shape[1]} x {image.spatial_shape[2]} voxels"
    data = np.asarray(image.data)
    if data.ndim == 4:
        bvals = image.bvals_s_mm2
        index = int(np.argmax(bvals)) if bvals else data.shape[3] - 1
        data = data[..., index]
        what += f", volume {index + 1} of {image.data.shape[3]}"
        if bvals:
            what += f" (b = {bvals[index]:.0f} s/mm2)"
    nifti = MRImage(np.asarray(data, np.float32), image.affine).to_nifti()
    write_bytes(target, gzip.compress(nifti.to_bytes(), compresslevel=1))
    write_bytes(described, what.encode("utf-8"))
    return f"volumes/{name}", what
