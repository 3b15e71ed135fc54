"""DICOM: find files, group them into studies and series, classify, and load series as images."""

from imaging.dicom.discover import DicomSeries, DicomStudy, scan_dicom
from imaging.dicom.series import load_dicom_series, load_series_folder

__all__ = ["DicomSeries", "DicomStudy", "load_dicom_series", "load_series_folder", "scan_dicom"]
