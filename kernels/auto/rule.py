"""The rule: `auto`'s first guess and fallback. It orders the candidates a measurement
times (`kernels.auto.candidates`), and decides alone under CONVBENCH_AUTO=rule or where
nothing is left to time or known (see `kernels.auto`).

From the per-type figures of `python -m harness.checks.types` (2-core AVX-512, 2
threads; README "Every type against torch"), in order:

0. a tiny layer (`direct.small.is_small`: the seed article's examples): direct, whose
   serial loop is all a few hundred products need (4-6 us against 12-35 us for any
   register-blocked form);
1. a dilated layer: direct (space-to-batch with the padded taps skipped beats the
   Winograd sub-grids 1.5-5x on ENet and DeepLab);
2. a transposed layer: direct when its kernel equals its stride (the
   sub-pixel form is one GEMM storing into y: U-Net's 2x2 upconvs); otherwise im2col
   (GEMM + col2im wins on DCGAN's 4x4 and 5x5 layers);
3. flattened with at least 16 channels: separable (its 1-D passes are what the type
   is; 3-13x torch on MobileNet's layers);
4. depthwise separable: direct (depthwise and pointwise fused per band of rows);
5. a 1x1 kernel: direct (the pixels-in-lanes GEMM on unpacked weights), im2col when
   the output is shuffled (its GEMM writes the shuffled channel for free);
6. a 3x3 (or 3x3x3) kernel at stride 1 with at least 16 input and output channels per
   group: winograd_f4 (1.3-1.6x torch on ResNet-50; below 16 channels the transforms
   cost more than the multiplications they save); any 3x3x3 stride-1 conv3d (the
   depth-taps form wins from 3 channels: 2x direct on C3D conv1a). Two refinements,
   from the structure of the problem:
   - a grouped layer (several groups, not depthwise) needs at least 64 channels per
     group: the product stage, the only part Winograd makes cheaper, runs group by
     group as (k/g) x (c/g) products per frequency, so each work item is one narrow
     block of output channels reducing over c/g inputs, and its fixed costs (the
     block's accumulators, its output transform, the input transform of the group's
     tiles) are paid per group; with 16 channels per group they outweigh the saving
     (ResNeXt-50's 14x14 layer, 32 groups of 16: winograd_f4 4.7x direct's time);
   - few tiles: each element of F(4x4,3x3)'s transformed filter (36 per channel pair,
     2.25x F(2x2,3x3)'s 16) serves one multiply-add per 4x4 output tile; with fewer
     tiles than two register blocks of tiles (2 x 6) the products are bound by
     computing or reading that filter, not by their multiply-adds, and F(2x2,3x3)'s
     smaller filter wins: winograd_f2 (ResNet-50 res5, 7x7 at N=1: 4 tiles of 4x4;
     winograd_f2 prepared 1.26 ms against winograd_f4's 2.42 ms);
7. a kernel of 5 taps or more per axis at stride 1 with at least 64 channels per group:
   fft (its products per tile fall with the kernel's size, Winograd's matrices stop at 3);
8. anything else: direct.

The first candidate the spec's cell supports is taken (`kernels.supports`, memory limit
included); if none of the rule's picks do, direct, then the first algorithm that does.
"""

from __future__ import annotations

from ..direct.small import is_small
from ..spec import ConvSpec
from ..target import TARGET
from ..types import conv_type as type_of
from ..winograd import tile_count

WINOGRAD_MIN_CHANNELS = 16
WINOGRAD_MIN_GROUP_CHANNELS = 64   # channels per group of a grouped (not depthwise) layer
WINOGRAD_F4_MIN_TILES = 2 * TARGET.outer_rows  # 4x4 output tiles, the batch included
FFT_MIN_CHANNELS = 64
FFT_MIN_TAPS = 5
FLATTENED_MIN_CHANNELS = 16


def winograd_min_channels(spec: ConvSpec) -> int:
    """Channels per group from which a 2-D 3x3 layer goes to Winograd (rule 6)."""
    grouped = 1 < spec.groups and not (spec.groups == spec.c == spec.k)
    return WINOGRAD_MIN_GROUP_CHANNELS if grouped else WINOGRAD_MIN_CHANNELS


def preferences(conv_type: str, spec: ConvSpec) -> tuple[str, ...]:
    """The algorithms the rule prefers for `spec` run as `conv_type`, best first (direct
    always last)."""
    per_group = min(spec.c, spec.k) // spec.groups
    stride_1 = all(s == 1 for s in spec.stride)
    kind = type_of(conv_type)
    if is_small(spec) or any(d > 1 for d in spec.dilation):
        return ("direct",)
    if kind.transposed:
        if tuple(spec.kernel) == tuple(spec.stride):
            return ("direct",)
        return ("im2col", "direct")
    if conv_type == "flattened" and per_group >= FLATTENED_MIN_CHANNELS:
        return ("separable", "direct")
    if conv_type == "depthwise_separable":
        return ("direct",)
    if all(k == 1 for k in spec.kernel):
        return ("im2col", "direct") if kind.shuffle else ("direct",)
    if stride_1 and all(k == 3 for k in spec.kernel) and (
            spec.ndim == 3 or per_group >= winograd_min_channels(spec)):
        if spec.ndim == 2 and tile_count(spec, 4) < WINOGRAD_F4_MIN_TILES:
            return ("winograd_f2", "direct")
        return ("winograd_f4", "direct")
    if stride_1 and min(spec.kernel) >= FFT_MIN_TAPS and per_group >= FFT_MIN_CHANNELS:
        return ("fft", "direct")
    return ("direct",)
