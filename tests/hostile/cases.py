"""Case folders for the command-line classes of issue 14: small clinical-only cases (no images, so
``analyze`` takes seconds), folder names that give one case id, and rich markup in user text."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "MARKUP",
    "clinical_case",
    "colliding_folders",
]

#: Text that rich would read as markup (closing tag without an opening one, style and link tags),
#: which must print literally and never crash.
MARKUP = ["[/]", "[bold]x[/bold]", "[link=file:///etc/passwd]y[/link]", "[red", "[/nope]"]


def clinical_case(folder: Path, *, label: str = "confusion", exposures: bool = True) -> Path:
    """A one-patient folder with patient.csv, events.csv (one event labelled ``label``) and,
    optionally, exposures.csv (one methotrexate infusion); ``analyze`` runs it in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "patient.csv").write_text(
        "age_years,sex,weight_kg,height_cm,index_date\n60,F,70,170,2023-01-02\n"
    )
    (folder / "events.csv").write_text(
        f'date,kind,label,drug,note\n2023-01-05,symptom_onset,"{label}",,\n'
    )
    if exposures:
        (folder / "exposures.csv").write_text(
            "drug,dose,unit,route,start,end,schedule,status,regimen,note\n"
            "methotrexate,3000,mg/m2,IV,2022-12-20,,once,,,\n"
        )
    return folder


def colliding_folders(root: Path, names: tuple[str, ...] = ("pt-1", "pt_1")) -> list[Path]:
    """Clinical cases in ``root/<name>`` for each name (the default two both give ``pt1``), each
    with its own event label (so their results differ)."""
    return [clinical_case(root / name, label=f"event of {name}") for name in names]
