"""The fallback rule: what `auto` runs where no tuning table answers.

From the measured figures in the README (2-core AVX-512 and AVX2, 2 threads), in order:

1. a 1x1 kernel (pointwise, pointwise_grouped, any 1x1 spec): im2col (a bare GEMM);
2. a 3x3 (or 3x3x3) kernel at stride 1 with at least 16 input and output channels per
   group: winograd_f4 (1.3-1.6x torch on ResNet-50; below 16 channels the transforms
   cost more than the multiplications they save);
3. a kernel of 5 taps or more per axis at stride 1 with at least 64 channels per group:
   fft (its products per tile fall with the kernel's size, Winograd's matrices stop at 3);
4. anything else: direct.

The first candidate the spec's cell supports is taken (`kernels.supports`, memory limit
included); if none of the rule's picks do, direct, then the first algorithm that does.
"""

from __future__ import annotations

from ..spec import ConvSpec

WINOGRAD_MIN_CHANNELS = 16
FFT_MIN_CHANNELS = 64
FFT_MIN_TAPS = 5


def preferences(spec: ConvSpec) -> tuple[str, ...]:
    """The algorithms the rule prefers for `spec`, best first (direct always last)."""
    per_group = min(spec.c, spec.k) // spec.groups
    stride_1 = all(s == 1 for s in spec.stride)
    if all(k == 1 for k in spec.kernel):
        return ("im2col", "direct")
    if stride_1 and all(k == 3 for k in spec.kernel) and per_group >= WINOGRAD_MIN_CHANNELS:
        return ("winograd_f4", "direct")
    if stride_1 and min(spec.kernel) >= FFT_MIN_TAPS and per_group >= FFT_MIN_CHANNELS:
        return ("fft", "direct")
    return ("direct",)
