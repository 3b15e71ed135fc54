"""What is in the images: load DICOM/NIfTI, and (later) preprocess, register, segment, quantify, track.

This layer knows nothing of the clinical files, the results store or the dashboard.
"""

from imaging.errors import ImagingError
from imaging.image import Acquisition, MRImage
from imaging.sequence import SequenceClass

__all__ = ["Acquisition", "ImagingError", "MRImage", "SequenceClass"]
