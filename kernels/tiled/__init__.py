"""The tiled "transform, multiply per frequency, inverse-transform" pipeline shared by the
bilinear algorithms (Winograd, FFT): `bilinear2d` runs any per-axis (A^T, G, B^T) on dense
grouped convolutions, `bilinear_depthwise` on depthwise ones (pipeline.py says how)."""

# pipeline first: it imports kernels.winograd last, which imports .depthwise (see there)
from .pipeline import bilinear2d, prepare, run_prepared, tiles_along  # isort: skip
from .depthwise import bilinear_depthwise  # isort: skip

__all__ = ["bilinear2d", "bilinear_depthwise", "prepare", "run_prepared", "tiles_along"]
