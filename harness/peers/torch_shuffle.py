"""ShuffleNet's channel shuffle as a scriptable torch module (its own module: it imports
torch at load time, and torch is optional)."""

from __future__ import annotations

import torch


class ChannelShuffle(torch.nn.Module):
    """Reshape to (n, g, k/g, h, w), swap the two channel axes, flatten them again."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, y):
        n, k, h, w = y.shape[0], y.shape[1], y.shape[2], y.shape[3]
        z = y.reshape(n, self.groups, k // self.groups, h, w)
        return z.transpose(1, 2).reshape(n, k, h, w)
