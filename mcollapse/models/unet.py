"""A small U-Net shared by the image diffusion and flow models (DDPM, rectified flow).

The usual recipe of Ho et al. (arXiv 2006.11239) at a size a CPU trains in a minute: residual blocks
with group norm and SiLU, a sinusoidal embedding of the (continuous) time, a learned embedding of
the class added to it, self-attention at the lowest resolution, and skip connections between the
down and up paths. ``num_classes`` real classes get one extra "null" class, ``num_classes`` itself,
which classifier-free guidance trains and samples with.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import check_int


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of a (float) time per item, as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """Two 3x3 convolutions; the embedding of (time, class) shifts the features in between."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels of a (small) feature map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(2, 3).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # (b, hw, c)
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    """eps (or velocity) = UNet(x, t, y). Works at any resolution divisible by 2^(levels - 1).

    ``mults`` gives the channel multiplier per resolution level (``(1, 2)``: 8x8 -> 4x4 for digits;
    ``(1, 2, 2)``: 28 -> 14 -> 7 for MNIST); ``blocks`` residual blocks per level.
    ``y`` may hold the null class ``num_classes``; ``num_classes=0`` makes it unconditional.
    """

    def __init__(
        self,
        channels: int = 1,
        num_classes: int = 10,
        width: int = 64,
        mults: tuple[int, ...] = (1, 2),
        blocks: int = 1,
        attention: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.channels = check_int("channels", channels, minimum=1)
        self.num_classes = check_int("num_classes", num_classes, minimum=0)
        width = check_int("width", width, minimum=8)
        blocks = check_int("blocks", blocks, minimum=1)
        if not mults or not all(isinstance(m, int) and m >= 1 for m in mults):
            raise ValueError(f"mults must be a non-empty tuple of integers >= 1, got {mults!r}")
        self.levels = len(mults)
        emb = 4 * width
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_emb = nn.Embedding(num_classes + 1, emb) if num_classes else None
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)

        self.down, skips, c = nn.ModuleList(), [width], width
        for i, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(ResBlock(c, width * m, emb, dropout))
                c = width * m
                skips.append(c)
            if i < self.levels - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb, dropout), ResBlock(c, c, emb, dropout)])
        self.mid_attn = Attention(c) if attention else nn.Identity()
        self.up = nn.ModuleList()
        for i, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), width * m, emb, dropout))
                c = width * m
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        factor = 2 ** (self.levels - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"image size must be divisible by {factor} for {self.levels} levels, got"
                f" {tuple(x.shape[-2:])}"
            )
        emb = self.time_mlp(time_embedding(t, self.width))
        if self.class_emb is not None:
            if y is None:
                y = torch.full((len(x),), self.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.class_emb(y)
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid_attn(self.mid[0](h, emb))
        h = self.mid[1](h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.out(h)
