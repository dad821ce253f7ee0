"""Weak supervision: from image-level labels to pixel masks (class activation maps → pseudo-masks →
a segmentation network trained on them)."""
