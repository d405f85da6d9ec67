"""Whole-slide images: opening slides, tumour-patch scoring and tiling, the lazy patch ``Dataset``."""
