"""DICOM: series found in a folder tree, decoded to values, masks from DICOM-SEG and predictions written as one."""

from medseg.data.readers.dicom.reader import DicomReader

__all__ = ["DicomReader"]
