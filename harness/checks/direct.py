"""Issue target: direct conv2d on ResNet-50's 3x3 stride-1 layers and direct depthwise on
MobileNetV1's 3x3 depthwise layers, against torch (each side in its own processes).

    python -m harness.checks.direct [--threads 2]
"""

from __future__ import annotations

import argparse

from harness.checks.common import compare_with_torch, print_header, print_rows
from kernels import ConvSpec

RESNET50_3X3 = [
    "mb1ic64ih56oc64oh56kh3ph1n\"resnet_50:res2_branch2b\"",
    "mb1ic128ih28oc128oh28kh3ph1n\"resnet_50:res3_branch2b\"",
    "mb1ic256ih14oc256oh14kh3ph1n\"resnet_50:res4_branch2b\"",
    "mb1ic512ih7oc512oh7kh3ph1n\"resnet_50:res5_branch2b\"",
]
MOBILENET_V1_DW = [
    "g32mb1ic32ih112oc32oh112kh3ph1n\"mobilenet:conv2_1/dw\"",
    "g64mb1ic64ih112oc64oh56kh3sh2ph1n\"mobilenet:conv2_2/dw\"",
    "g128mb1ic128ih56oc128oh56kh3ph1n\"mobilenet:conv3_1/dw\"",
    "g128mb1ic128ih56oc128oh28kh3sh2ph1n\"mobilenet:conv3_2/dw\"",
    "g256mb1ic256ih28oc256oh28kh3ph1n\"mobilenet:conv4_1/dw\"",
    "g256mb1ic256ih28oc256oh14kh3sh2ph1n\"mobilenet:conv4_2/dw\"",
    "g512mb1ic512ih14oc512oh14kh3ph1n\"mobilenet:conv5_1/dw\"",
    "g512mb1ic512ih14oc512oh7kh3sh2ph1n\"mobilenet:conv5_6/dw\"",
    "g1024mb1ic1024ih7oc1024oh7kh3ph1n\"mobilenet:conv6/dw\"",
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    print_header(args.threads)
    print("direct conv2d, ResNet-50 3x3 stride-1 layers (target >= 0.8x torch)")
    print_rows([compare_with_torch("conv2d", "direct", ConvSpec.parse(d), args.threads)
                for d in RESNET50_3X3])
    print("\ndirect depthwise, MobileNetV1 3x3 depthwise layers (target >= 1.0x torch)")
    print_rows([compare_with_torch("depthwise", "direct", ConvSpec.parse(d), args.threads)
                for d in MOBILENET_V1_DW])


if __name__ == "__main__":
    main()
