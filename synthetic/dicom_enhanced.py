"""Enhanced MR Image Storage (one multi-frame file per series), Siemens XA style."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from synthetic.dicom_writer import (
    ENHANCED_MR_IMAGE_STORAGE,
    Series,
    Study,
    base_dataset,
    make_uid,
)
from synthetic.dicom_writer import item as _item
from synthetic.geometry import IOP_DECIMALS, IPP_DECIMALS, ds_str
from synthetic.vendors import SCANNERS


def enhanced_dataset(study: Study, series: Series) -> Dataset:
    """One Enhanced MR Image Storage dataset (all frames of a series), Siemens XA style.

    Shared functional groups hold pixel measures, the rescale (PixelValueTransformation), frame
    type, windowing and timing; per-frame groups hold the plane position and orientation, the
    frame content (stack, in-stack position, temporal position = DWI volume, dimension index
    values), MRDiffusionSequence (DWI: b-value; ADC: directionality only) and, for DWI, the
    per-b-value window.

    Parameters
    ----------
    study : Study
        The session.
    series : Series
        The series.

    Returns
    -------
    pydicom.dataset.Dataset
    """
    proto = series.protocol
    sop_uid = make_uid(study.seed, study.case_id, "sop", series.series_uid, 1)
    ds = base_dataset(study, series, ENHANCED_MR_IMAGE_STORAGE, sop_uid)
    ds.ImageType = proto.image_type
    ds.InstanceCreationDate = ds.StudyDate
    ds.InstanceCreationTime = series.series_time
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = series.series_time
    ds.AcquisitionDateTime = ds.StudyDate + series.series_time
    ds.InstanceNumber = 1
    contrast = {"flair": "FLUID_ATTENUATED", "dwi": "DIFFUSION", "adc": "DIFFUSION"}
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = contrast.get(series.kind, "T1")
    ds.ContentQualification = "PRODUCT"
    attrs = proto.attrs
    is_epi = series.kind in ("dwi", "adc")
    ds.PulseSequenceName = {"flair": "tir2d1_15", "localizer": "fl2d1"}.get(
        series.kind, "epse2d1_128"
    )
    ds.EchoPulseSequence = "GRADIENT" if series.kind == "localizer" else "SPIN"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.SteadyStatePulseSequence = "NONE"
    ds.EchoPlanarPulseSequence = "YES" if is_epi else "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "FAT" if is_epi else "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.SegmentedKSpaceTraversal = "SINGLE" if is_epi else "PARTIAL"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.KSpaceFiltering = "NONE"
    ds.NumberOfKSpaceTrajectories = 1
    ds.ResonantNucleus = "1H"
    ds.MRAcquisitionType = "2D"
    ds.ApplicableSafetyStandardAgency = "IEC"

    # frames: (grid index, slice k, volume v)
    frames = []
    for g, (grid, pix) in enumerate(zip(series.grids, series.pixels, strict=True)):
        n_vol = pix.shape[3] if pix.ndim == 4 else 1
        for v in range(n_vol):
            for k in range(grid.n_slices):
                frames.append((g, k, v))
    grid0 = series.grids[0]

    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence(
        [
            _item(
                PixelSpacing=[ds_str(v, 6) for v in grid0.pixel_spacing],
                SliceThickness=ds_str(grid0.slice_thickness, 4),
                SpacingBetweenSlices=ds_str(grid0.spacing_between_slices, 4),
            )
        ]
    )
    # PlaneOrientationSequence is per frame, as Siemens XA writes it (a shared one also is valid
    # DICOM, but dcm2niix v1.0.20260724 then mis-converts the files of a folder)
    slope, intercept = series.rescale if series.rescale is not None else (1.0, 0.0)
    shared.PixelValueTransformationSequence = Sequence(
        [
            _item(
                RescaleIntercept=ds_str(intercept, 6),
                RescaleSlope=ds_str(slope, 6),
                RescaleType="US",
            )
        ]
    )
    if not series.window_by_b:
        shared.FrameVOILUTSequence = Sequence(
            [
                _item(
                    WindowCenter=ds_str(series.window[0], 4),
                    WindowWidth=ds_str(series.window[1], 4),
                )
            ]
        )
    shared.MRTimingAndRelatedParametersSequence = Sequence(
        [
            _item(
                RepetitionTime=attrs.get("RepetitionTime", "0"),
                FlipAngle=attrs.get("FlipAngle", "90"),
                EchoTrainLength=attrs.get("EchoTrainLength", "1"),
                RFEchoTrainLength=int(attrs.get("EchoTrainLength", "1")) if not is_epi else 1,
                GradientEchoTrainLength=128 if is_epi else 0,
            )
        ]
    )
    shared.MREchoSequence = Sequence([_item(EffectiveEchoTime=float(attrs.get("EchoTime", "0")))])
    modifier = _item(
        InversionRecovery="YES" if series.kind == "flair" else "NO",
        FlowCompensation="NONE",
        Spoiling="NONE" if series.kind != "localizer" else "RF",
        T2Preparation="NO",
        SpectrallySelectedExcitation="NONE",
        SpatialPresaturation="NONE",
        PartialFourier="YES" if is_epi else "NO",
        ParallelAcquisition="NO",
    )
    if series.kind == "flair":
        modifier.InversionTimes = [float(attrs["InversionTime"])]
    shared.MRModifierSequence = Sequence([modifier])
    pe = attrs.get("InPlanePhaseEncodingDirection", "COL")
    shared.MRFOVGeometrySequence = Sequence(
        [
            _item(
                InPlanePhaseEncodingDirection="COLUMN" if pe == "COL" else "ROW",
                MRAcquisitionFrequencyEncodingSteps=grid0.rows if pe == "ROW" else grid0.columns,
                MRAcquisitionPhaseEncodingStepsInPlane=grid0.columns if pe == "ROW" else grid0.rows,
                PercentSampling="100",
                PercentPhaseFieldOfView=attrs.get("PercentPhaseFieldOfView", "100"),
            )
        ]
    )
    shared.MRAveragesSequence = Sequence(
        [_item(NumberOfAverages=attrs.get("NumberOfAverages", "1"))]
    )
    shared.MRImagingModifierSequence = Sequence(
        [
            _item(
                PixelBandwidth=attrs.get("PixelBandwidth", "200"),
                MagnetizationTransfer="NONE",
                BloodSignalNulling="NO",
                Tagging="NONE",
                TransmitterFrequency=float(SCANNERS[study.vendor].frequency),
            )
        ]
    )
    frame_type = _item(
        FrameType=proto.image_type,
        PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME",
        VolumeBasedCalculationTechnique="NONE",
        ComplexImageComponent="MAGNITUDE",
        AcquisitionContrast=ds.AcquisitionContrast,
    )
    shared.MRImageFrameTypeSequence = Sequence([frame_type])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    dim_uid = make_uid(study.seed, study.case_id, "dimension", series.series_uid)
    ds.DimensionOrganizationSequence = Sequence([_item(DimensionOrganizationUID=dim_uid)])
    # as Siemens XA: stack, in-stack position, temporal position (the DWI volume); the b-value
    # of each frame is in its MRDiffusionSequence
    pointers = [(0x00209056, 0x00209111), (0x00209057, 0x00209111), (0x00209128, 0x00209111)]
    ds.DimensionIndexSequence = Sequence(
        [
            _item(
                DimensionOrganizationUID=dim_uid,
                DimensionIndexPointer=ptr,
                FunctionalGroupPointer=grp,
            )
            for ptr, grp in pointers
        ]
    )

    per_frame = []
    planes = []
    for g, k, v in frames:
        grid = series.grids[g]
        item = Dataset()
        stack_id = str(g + 1)
        dim_values = [g + 1, k + 1, v + 1]
        item.FrameContentSequence = Sequence(
            [
                _item(
                    FrameAcquisitionDateTime=ds.StudyDate + series.series_time,
                    FrameReferenceDateTime=ds.StudyDate + series.series_time,
                    FrameAcquisitionDuration=120000.0,
                    StackID=stack_id,
                    InStackPositionNumber=k + 1,
                    TemporalPositionIndex=v + 1,
                    DimensionIndexValues=dim_values,
                )
            ]
        )
        item.PlanePositionSequence = Sequence(
            [_item(ImagePositionPatient=[ds_str(x, IPP_DECIMALS) for x in grid.ipp_lps[k]])]
        )
        item.PlaneOrientationSequence = Sequence(
            [_item(ImageOrientationPatient=[ds_str(x, IOP_DECIMALS) for x in grid.iop_lps])]
        )
        if series.kind == "adc":  # per frame, without a b-value, as Siemens XA writes it
            item.MRDiffusionSequence = Sequence([_item(DiffusionDirectionality="ISOTROPIC")])
        if series.kind == "dwi":
            b = series.b_values[v]
            item.MRDiffusionSequence = Sequence(
                [
                    _item(
                        DiffusionBValue=float(b),
                        DiffusionDirectionality="ISOTROPIC" if b > 0 else "NONE",
                    )
                ]
            )
            if series.window_by_b:
                center, width = series.window_by_b[b]
                item.FrameVOILUTSequence = Sequence(
                    [_item(WindowCenter=ds_str(center, 4), WindowWidth=ds_str(width, 4))]
                )
        per_frame.append(item)
        pix = series.pixels[g]
        planes.append((pix[:, :, k, v] if pix.ndim == 4 else pix[:, :, k]).T)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.NumberOfFrames = len(frames)
    # as Siemens XA; converters expect it whenever TemporalPositionIndex is present
    ds.NumberOfTemporalPositions = len(series.b_values) if series.kind == "dwi" else 1
    stack = np.stack(planes)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stack.shape[1]), int(stack.shape[2])
    ds.BitsAllocated = 16
    ds.BitsStored = series.bits_stored
    ds.HighBit = series.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.PixelData = np.ascontiguousarray(stack.astype("<u2")).tobytes()
    return ds
