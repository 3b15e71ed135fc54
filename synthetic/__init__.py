"""Synthetic sample cases for leukotrack: toxic leukoencephalopathy followed on MRI.

``make_case`` writes one patient folder as a PACS-style DICOM export (several MRI sessions with
DWI, ADC, FLAIR and a localizer, from several vendors and encodings) plus its ground truth
(lesion and brain masks on every acquisition grid, reference pixel arrays, true head poses,
lesion volumes and component bookkeeping in ``truth/truth.json``).

The anatomy comes from the MNI152 2009a template shipped in the nilearn wheel; skull and scalp
are synthetic. See :mod:`synthetic.case` for the layout and :mod:`synthetic.truth` for the truth
definitions.
"""

from synthetic.case import DEFAULT_DAYS, DEFAULT_SEED, GENERATOR_VERSION, make_case

__all__ = ["DEFAULT_DAYS", "DEFAULT_SEED", "GENERATOR_VERSION", "make_case"]
