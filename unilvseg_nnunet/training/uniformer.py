"""UniFormer-S image backbone (Li et al., 2022), the paper's super-image encoder, written compactly.

Four stages at strides 4, 8, 16, 32 with widths (64, 128, 320, 512) and depths (3, 4, 8, 3):
stages 1-2 use convolutional "CBlock"s (depthwise-conv token mixing), stages 3-4 use "SABlock"s
(global multi-head self-attention, head dim 64). Parameter names follow the official release
(``patch_embed1.proj``, ``blocks3.0.attn.qkv`` ...) so its ImageNet checkpoint loads by name. No
classification head: the encoder returns the four stage outputs (the last one batch-normalised,
as in the authors' SimLVSeg U-Net). Attention is written as explicit matrix products so that
fvcore counts its FLOPs.
"""
from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Non-overlapping strided convolution followed by LayerNorm over channels."""

    def __init__(self, in_channels: int, dim: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=stride, stride=stride)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class ConvMlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)


class CBlock(nn.Module):
    """Local relation aggregator: depthwise 5x5 convolution between two 1x1 projections."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class Attention(nn.Module):
    def __init__(self, dim: int, head_dim: int = 64):
        super().__init__()
        self.num_heads = dim // head_dim
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class SABlock(nn.Module):
    """Global relation aggregator: multi-head self-attention over all positions of the stage."""

    def __init__(self, dim: int, head_dim: int = 64, mlp_ratio: float = 4.0):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class UniFormer(nn.Module):
    """UniFormer feature extractor; ``forward`` returns one map per stage (strides ``reductions``)."""

    def __init__(self, in_channels: int = 3, depths=(3, 4, 8, 3), dims=(64, 128, 320, 512), head_dim: int = 64,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.channels = list(dims)
        self.reductions = [4, 8, 16, 32]
        prev = in_channels
        for i, (depth, dim) in enumerate(zip(depths, dims), start=1):
            setattr(self, f"patch_embed{i}", PatchEmbed(prev, dim, 4 if i == 1 else 2))
            blocks = [CBlock(dim, mlp_ratio) if i <= 2 else SABlock(dim, head_dim, mlp_ratio) for _ in range(depth)]
            setattr(self, f"blocks{i}", nn.ModuleList(blocks))
            prev = dim
        self.norm = nn.BatchNorm2d(dims[-1])
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i in range(1, 5):
            x = getattr(self, f"patch_embed{i}")(x)
            for block in getattr(self, f"blocks{i}"):
                x = block(x)
            features.append(self.norm(x) if i == 4 else x)
        return features


def uniformer_small(in_channels: int = 3) -> UniFormer:
    """UniFormer-S: depths (3, 4, 8, 3), widths (64, 128, 320, 512), head dim 64."""
    return UniFormer(in_channels, depths=(3, 4, 8, 3), dims=(64, 128, 320, 512), head_dim=64)
