"""The tiled "transform, multiply per frequency, inverse-transform" pipeline shared by the
bilinear algorithms (Winograd, FFT): `bilinear2d` runs any per-axis (A^T, G, B^T)."""

from .pipeline import bilinear2d, prepare, run_prepared, tiles_along

__all__ = ["bilinear2d", "prepare", "run_prepared", "tiles_along"]
