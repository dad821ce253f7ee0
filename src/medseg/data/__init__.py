"""Data layer: readers → Case index → splits → preprocessed store → batches."""

from medseg.data.case import Case
from medseg.data.readers import READERS, Reader, build_reader

__all__ = ["Case", "READERS", "Reader", "build_reader"]
