"""Grayscale Softcopy Presentation State: a stray non-image object in an export."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from synthetic.dicom_writer import GSPS_STORAGE, Study, base_dataset, make_uid
from synthetic.dicom_writer import item as _item


def gsps_dataset(study: Study, referenced: list[Dataset], series_uid: str, time: str) -> Dataset:
    """A Grayscale Softcopy Presentation State annotating one referenced image (no pixels).

    Parameters
    ----------
    study : Study
        The session.
    referenced : list of pydicom.dataset.Dataset
        Images of one series; the middle one gets a text annotation.
    series_uid : str
        SeriesInstanceUID of the presentation-state series.
    time : str
        Creation time.

    Returns
    -------
    pydicom.dataset.Dataset
    """
    ref = referenced[len(referenced) // 2]
    sop_uid = make_uid(study.seed, study.case_id, "gsps", series_uid)
    ds = base_dataset(study, None, GSPS_STORAGE, sop_uid)
    ds.Modality = "PR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 99
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = time
    ds.SeriesDescription = "Presentation State"
    ds.InstanceNumber = 1
    ds.ContentLabel = "ANNOTATION"
    ds.ContentDescription = "Reading annotation"
    ds.PresentationCreationDate = ds.StudyDate
    ds.PresentationCreationTime = time
    ds.ContentCreatorName = "DEMO^READER"
    ref_img = _item(
        ReferencedSOPClassUID=ref.SOPClassUID, ReferencedSOPInstanceUID=ref.SOPInstanceUID
    )
    ds.ReferencedSeriesSequence = Sequence(
        [
            _item(
                SeriesInstanceUID=ref.SeriesInstanceUID, ReferencedImageSequence=Sequence([ref_img])
            )
        ]
    )
    ds.DisplayedAreaSelectionSequence = Sequence(
        [
            _item(
                DisplayedAreaTopLeftHandCorner=[1, 1],
                DisplayedAreaBottomRightHandCorner=[int(ref.Columns), int(ref.Rows)],
                PresentationSizeMode="SCALE TO FIT",
                PresentationPixelAspectRatio=[1, 1],
            )
        ]
    )
    ds.GraphicLayerSequence = Sequence([_item(GraphicLayer="ANNOTATION", GraphicLayerOrder=1)])
    text = _item(
        UnformattedTextValue="FLAIR hyperintensity, left parietal",
        AnchorPoint=[float(ref.Columns) * 0.6, float(ref.Rows) * 0.55],
        AnchorPointAnnotationUnits="PIXEL",
        AnchorPointVisibility="Y",
        BoundingBoxTopLeftHandCorner=[float(ref.Columns) * 0.6, float(ref.Rows) * 0.35],
        BoundingBoxBottomRightHandCorner=[float(ref.Columns) * 0.95, float(ref.Rows) * 0.42],
        BoundingBoxAnnotationUnits="PIXEL",
        BoundingBoxTextHorizontalJustification="LEFT",
    )
    ds.GraphicAnnotationSequence = Sequence(
        [
            _item(
                GraphicLayer="ANNOTATION",
                ReferencedImageSequence=Sequence([ref_img]),
                TextObjectSequence=Sequence([text]),
            )
        ]
    )
    ds.SoftcopyVOILUTSequence = Sequence(
        [_item(WindowCenter=ref.WindowCenter, WindowWidth=ref.WindowWidth)]
    )
    ds.PresentationLUTShape = "IDENTITY"
    return ds
