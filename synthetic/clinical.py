"""The clinical files of the sample cases (patient.csv, exposures.csv, events.csv, labs.csv).

Two cases, both SYNTHETIC reconstructions of published stories, not patient data:

- ``indexcase``: the daratumumab leukoencephalopathy case of Steinegger et al. (Front Immunol 2024,
  doi 10.3389/fimmu.2024.1451693). Dates are aligned with the sample MRIs (first MRI 2023-03-14).
  Weight, height, albumin and the exact dosing dates are invented to be plausible.
- ``cnsmyeloma``: the letter on daratumumab in serum and CSF in CNS myeloma. The drug levels (serum
  277, 221, 213 mg/L; CSF 4, 3, 3 mg/L, 12, 15 and 19 days after the last infusion) are the letter's;
  the albumin and M-protein values are BACK-CALCULATED from the letter's indices (daratumumab index
  0.33-0.37, M-protein index 11.9), not reported; dates, weight, sex and myeloma type are assumed.
  The case has clinical files only, no images.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CLINICAL_CASES", "write_clinical"]

_INDEX = {
    "patient.csv": """\
# SYNTHETIC sample patient (Steinegger et al. 2024 story); values invented to be plausible
age_years,sex,weight_kg,height_cm,myeloma_type,index_date,note
61,F,62,165,POEMS (lambda light chain),first_mri,day 0 = first MRI (the day after admission)
""",
    "exposures.csv": """\
# D-Rd started about 60 days before the first MRI (2023-03-14); daratumumab stopped after the day-8 MRI
drug,dose,unit,route,start,end,schedule,status,regimen,note
daratumumab,16,mg/kg,IV,2023-01-13,,weekly x8; every 2 weeks x8; every 4 weeks,,D-Rd,label schedule
lenalidomide,25,mg,PO,2023-01-13,2023-06-30,days 1-21 of 28,,D-Rd,
dexamethasone,40,mg,PO,2023-01-13,2023-06-30,weekly,,D-Rd,
dexamethasone,40,mg,PO,2023-03-17,,,held,D-Rd,held during admission
""",
    "events.csv": """\
date,kind,label,drug,note
2023-03-08,symptom_onset,headache; worsening tetraparesis,,
2023-03-13,admission,blood pressure 210/82 mmHg on admission,,
2023-03-23,drug_stop,daratumumab stopped (suspected toxic leukoencephalopathy),daratumumab,after the day-8 MRI
""",
    "labs.csv": """\
date,specimen,analyte,value,unit,note
2023-01-12,serum,albumin,38,g/L,before the first dose (invented)
2023-03-13,serum,albumin,34,g/L,on admission (invented)
""",
}

_CNS = {
    "patient.csv": """\
# SYNTHETIC reconstruction of the CNS myeloma letter; weight, sex, age and myeloma type are ASSUMED
age_years,sex,weight_kg,height_cm,myeloma_type,index_date,note
58,M,75,175,IgA kappa,first_dose,no images: clinical files only
""",
    "exposures.csv": """\
# D-VTd induction and consolidation around an autologous transplant, then daratumumab every 8 weeks
drug,dose,unit,route,start,end,schedule,status,regimen,note
daratumumab,16,mg/kg,IV,2016-08-01,,weekly x8; every 2 weeks x4,,D-VTd induction,
bortezomib,1.3,mg/m2,SC,2016-08-01,,"days 1,4,8,11 of 28 x4",,D-VTd induction,
thalidomide,100,mg,PO,2016-08-01,,daily x112,,D-VTd induction,
dexamethasone,40,mg,PO,2016-08-01,,"days 1,2,8,9,15,16,22,23 of 28 x4",,D-VTd induction,
daratumumab,16,mg/kg,IV,2017-01-16,,every 2 weeks x4,,D-VTd consolidation,
daratumumab,16,mg/kg,IV,2017-04-03,2018-06-25,every 8 weeks,,maintenance,
""",
    "events.csv": """\
date,kind,label,drug,note
2016-12-05,transplant,high-dose melphalan and autologous stem-cell transplant,,
2018-07-05,relapse,CNS relapse of multiple myeloma,,
2018-07-07,csf_tap,lumbar puncture with paired serum sample,,12 days after the last infusion
2018-07-10,csf_tap,lumbar puncture with paired serum sample,,15 days after the last infusion
2018-07-14,csf_tap,lumbar puncture with paired serum sample,,19 days after the last infusion
2018-07-14,drug_stop,daratumumab stopped at CNS relapse,daratumumab,
""",
    "labs.csv": """\
# Daratumumab levels as reported (mass spectrometry). Albumin and M-protein values are
# BACK-CALCULATED from the reported indices (daratumumab index 0.33-0.37, M-protein index 11.9):
# they are not reported values.
date,specimen,analyte,value,unit,note
2018-07-07,serum,daratumumab,277,mg/L,reported
2018-07-07,csf,daratumumab,4,mg/L,reported
2018-07-10,serum,daratumumab,221,mg/L,reported
2018-07-10,csf,daratumumab,3,mg/L,reported
2018-07-14,serum,daratumumab,213,mg/L,reported
2018-07-14,csf,daratumumab,3,mg/L,reported
2018-07-07,serum,albumin,35,g/L,back-calculated (not reported)
2018-07-07,csf,albumin,1400,mg/L,back-calculated (not reported)
2018-07-10,serum,albumin,35,g/L,back-calculated (not reported)
2018-07-10,csf,albumin,1400,mg/L,back-calculated (not reported)
2018-07-14,serum,albumin,35,g/L,back-calculated (not reported)
2018-07-14,csf,albumin,1400,mg/L,back-calculated (not reported)
2018-07-07,serum,M-protein,2.0,g/L,back-calculated (not reported)
2018-07-07,csf,M-protein,952,mg/L,back-calculated (not reported)
""",
}

#: Case folder name -> {file name: CSV text}.
CLINICAL_CASES: dict[str, dict[str, str]] = {"indexcase": _INDEX, "cnsmyeloma": _CNS}


def write_clinical(out_dir: Path, case_id: str) -> list[Path]:
    """Write the clinical files of sample case ``case_id`` into ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in CLINICAL_CASES[case_id].items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written
