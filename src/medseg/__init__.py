"""medseg: 2-D medical image segmentation when masks are scarce."""

__version__ = "0.1.0"
