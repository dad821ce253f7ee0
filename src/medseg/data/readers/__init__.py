"""Readers turn source files into a Case index and decode one case at a time; one file per format."""

from medseg.data.readers import dicom, figshare, folder, nifti, nnunet, phantoms  # noqa: F401  (registration)
from medseg.data.readers.base import READERS, Reader, build_reader

__all__ = ["READERS", "Reader", "build_reader"]
