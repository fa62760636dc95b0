"""A Glow-style normalizing flow (Kingma & Dhariwal, arXiv 1807.03039; RealNVP, Dinh et al., arXiv
1605.08803), the likelihood family of MAD's fifth research question (Alemohammad et al., arXiv
2307.01850, who ran GLOW).

A flow is an invertible map f from data x to a latent z ~ N(0, I), so the density is exact:
log p(x) = log N(f(x); 0, I) + log |det df/dx|, and training maximises it. Each step of the flow is
Glow's triple: actnorm (a per-channel affine map, initialised from the first batch so that its
output has zero mean and unit variance), an invertible 1x1 convolution (a learned C x C matrix
mixing the channels, log det = H W log |det W|) and an affine coupling layer (half the channels
pass unchanged and set a scale and shift for the other half, so the Jacobian is triangular).

Images: pixels are dequantised with uniform noise over their bin (``bins`` values per channel: 17
for the 8x8 digits, 256 for MNIST) and mapped to logit space as in RealNVP. Multi-scale: each of
``scales`` levels squeezes 2x2 pixels into channels (1x8x8 -> 4x4x4 -> 8x2x2; 1x28x28 -> 4x14x14
-> 8x7x7) and, but for the last, factors half the channels out to the latent. Points (shape
(D,)) are continuous, so no dequantisation and no logit: one level of the same steps on flat
(N, D) tensors (the couplings are MLPs; flat, not 1x1 images, because a 2-D flow's cost is all
per-op overhead). MAD's 2-D setting is ``depth=8, hidden=64``.

MAD's bias is the temperature: ``sample`` draws z ~ N(0, bias I), i.e. bias scales the variance
(std sqrt(bias)), as MAD writes N(0, lambda I); they used lambda = 0.75. Image samples are rounded
to the pixel grid, as an image file would store them, so that a later generation dequantises
them exactly as the real data. The model is unconditional: samples carry label 0.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_bias, check_int, check_items, check_positive
from ._training import device_default, seeded
from .protocol import Recorded

GRAD_CLIP = 50.0  # max gradient norm, as Glow clips: rare large gradients early in training


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): each 2x2 block of pixels into channels."""
    n, c, h, w = x.shape
    x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    x = x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c // 4, 2 * h, 2 * w)


def pixels(x: torch.Tensor) -> int:
    """Positions per item that share a per-channel map: H W of an image, 1 for a point (N, C)."""
    return 1 if x.dim() == 2 else x.shape[2] * x.shape[3]


class Pointwise(nn.Linear):
    """A 1x1 convolution as a dense layer over the channels (much faster than conv2d on a CPU);
    on points (N, C) a plain dense layer."""

    def forward(self, x):
        if x.dim() == 2:
            return F.linear(x, self.weight, self.bias)
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


def conv(c_in: int, c_out: int, kernel: int) -> nn.Module:
    return Pointwise(c_in, c_out) if kernel == 1 else nn.Conv2d(c_in, c_out, kernel, padding=1)


class ActNorm(nn.Module):
    """y = (x + b) exp(s) per channel; b, s set from the first training batch (data-dependent)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("ready", torch.tensor(False))

    def forward(self, x):
        dims = (0,) if x.dim() == 2 else (0, 2, 3)  # points (N, C) or images (N, C, H, W)
        if self.training and not self.ready:
            with torch.no_grad():
                self.bias.copy_(-x.mean(dims).view_as(self.bias))
                std = x.std(dims, unbiased=False).view_as(self.bias)
                self.log_scale.copy_(-torch.log(std + 1e-6))
                self.ready.fill_(True)
        logdet = self.log_scale.sum() * pixels(x)
        b, s = self._params(x)
        return (x + b) * s.exp(), logdet.expand(len(x))

    def inverse(self, y):
        b, s = self._params(y)
        return y * (-s).exp() - b

    def _params(self, x):
        if x.dim() == 2:
            return self.bias.view(1, -1), self.log_scale.view(1, -1)
        return self.bias, self.log_scale


class InvConv(nn.Module):
    """Invertible 1x1 convolution: y = W x at every pixel, W a learned C x C matrix (starts as a
    random rotation). C is at most a few dozen here, so a plain slogdet is cheap."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(channels, channels))[0])

    def forward(self, x):
        logdet = torch.linalg.slogdet(self.weight)[1] * pixels(x)
        return self._mix(x, self.weight), logdet.expand(len(x))

    def inverse(self, y):
        return self._mix(y, torch.linalg.inv(self.weight))

    @staticmethod
    def _mix(x, w):
        return F.linear(x, w) if x.dim() == 2 else F.linear(x.movedim(1, -1), w).movedim(-1, 1)


class Coupling(nn.Module):
    """Affine coupling: x = (xa, xb) -> (xa, (xb + t(xa)) * s(xa)), s = sigmoid(h + 2) as in Glow
    (the last layer starts at zero, so the step starts near the identity)."""

    def __init__(self, channels: int, hidden: int, kernel: int):
        super().__init__()
        self.split = channels // 2
        out = channels - self.split
        self.net = nn.Sequential(
            conv(self.split, hidden, kernel),
            nn.ReLU(),
            conv(hidden, hidden, 1),
            nn.ReLU(),
            conv(hidden, 2 * out, kernel),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, xa):
        h = self.net(xa)
        return F.logsigmoid(h[:, 0::2] + 2.0), h[:, 1::2]

    def forward(self, x):
        xa, xb = x[:, : self.split], x[:, self.split :]
        log_s, t = self._scale_shift(xa)
        return torch.cat([xa, (xb + t) * log_s.exp()], 1), log_s.flatten(1).sum(1)

    def inverse(self, y):
        ya, yb = y[:, : self.split], y[:, self.split :]
        log_s, t = self._scale_shift(ya)
        return torch.cat([ya, yb * (-log_s).exp() - t], 1)


class FlowNet(nn.Module):
    """The multi-scale flow on (N, C, H, W): x -> flat z (N, C H W) and back."""

    def __init__(self, shape: tuple[int, int, int], scales: int, depth: int, hidden: int,
                 squeezes: bool):  # fmt: skip
        super().__init__()
        c, h, w = shape
        self.squeezes, self.parts, self.levels = squeezes, [], nn.ModuleList()
        kernel = 3 if squeezes else 1
        for level in range(scales):
            if squeezes:
                c, h, w = 4 * c, h // 2, w // 2
            steps = [m for _ in range(depth)
                     for m in (ActNorm(c), InvConv(c), Coupling(c, hidden, kernel))]  # fmt: skip
            self.levels.append(nn.ModuleList(steps))
            if level < scales - 1:
                self.parts.append((c // 2, h, w))
                c -= c // 2
        self.parts.append((c, h, w))

    def forward(self, x):
        logdet, zs = torch.zeros(len(x), device=x.device), []
        for i, steps in enumerate(self.levels):
            x = squeeze(x) if self.squeezes else x
            for step in steps:
                x, ld = step(x)
                logdet = logdet + ld
            if i < len(self.levels) - 1:
                zs.append(x[:, : self.parts[i][0]])
                x = x[:, self.parts[i][0] :]
        zs.append(x)
        return torch.cat([z.flatten(1) for z in zs], 1), logdet

    def inverse(self, z):
        sizes = [math.prod(p) for p in self.parts]
        parts = zip(z.split(sizes, 1), self.parts, strict=True)
        zs = [part.view(-1, *p) if self.squeezes else part for part, p in parts]  # points: (N, C)
        x = zs[-1]
        for i in reversed(range(len(self.levels))):
            x = x if i == len(self.levels) - 1 else torch.cat([zs[i], x], 1)
            for step in reversed(self.levels[i]):
                x = step.inverse(x)
            x = unsqueeze(x) if self.squeezes else x
        return x


class NormalizingFlow(Recorded):
    """The model protocol of ``mcollapse.models`` for a Glow-style flow; see the module docstring.

    ``fit`` maximises the exact likelihood for ``steps`` Adam steps (mini-batches drawn with
    replacement, fresh dequantisation noise each time) from the current weights, so a loaded
    model fine-tunes. ``forward`` / ``inverse`` / ``log_prob`` work in data space ([-1, 1] pixels,
    the logit transform included); ``bits_per_dim`` reports the discrete likelihood of images.
    The defaults suit the 8x8 digits: 1,000 steps (about a minute on one CPU thread) reach about
    2.1 bits per dim on the held-out split, FID 5.9 at n = 500 (floor 0.6), legible digits.
    """

    def __init__(
        self,
        shape: tuple[int, ...] = (1, 8, 8),
        *,
        scales: int | None = None,
        depth: int = 6,
        hidden: int = 48,
        bins: int = 17,
        alpha: float = 0.05,
        steps: int = 1000,
        batch_size: int = 64,
        lr: float = 2e-3,
        warmup: int = 100,
        sample_batch: int = 1000,
        init_seed: int = 0,
        device=None,
        progress: bool = True,
    ):
        if (
            not isinstance(shape, tuple | list)
            or len(shape) not in (1, 3)
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in shape)
            or (len(shape) == 1 and shape[0] < 2)
        ):
            raise ValueError(
                f"shape must be (dim >= 2,) for points or (channels, height, width), got {shape!r}"
            )
        self.shape = tuple(int(s) for s in shape)
        self.images = len(self.shape) == 3
        if self.images:
            self.scales = check_int("scales", 2 if scales is None else scales, minimum=1)
            if self.shape[1] % 2**self.scales or self.shape[2] % 2**self.scales:
                raise ValueError(
                    f"scales must halve height and width evenly each time: {self.shape[1:]} is"
                    f" not divisible by 2^{self.scales}; got scales={self.scales}"
                )
        else:
            self.scales = check_int("scales", 1 if scales is None else scales, minimum=1, maximum=1)
        self.bins = check_int("bins", bins, minimum=2)
        self.alpha = check_positive("alpha", alpha)
        if self.alpha >= 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
        self.steps = check_int("steps", steps, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.lr = check_positive("lr", lr)
        self.warmup = check_int("warmup", warmup, minimum=0)
        self.sample_batch = check_int("sample_batch", sample_batch, minimum=1)
        self.device = torch.device(device) if device is not None else device_default()
        self.progress = progress
        self.dim = math.prod(self.shape)
        net_shape = self.shape if self.images else (self.shape[0], 1, 1)
        with seeded(check_int("init_seed", init_seed, minimum=0)):
            self.net = FlowNet(
                net_shape,
                self.scales,
                check_int("depth", depth, minimum=1),
                check_int("hidden", hidden, minimum=1),
                squeezes=self.images,
            )
        self.net.to(self.device).eval()
        self.losses: list[float] = []  # training loss per step: nats per dimension

    # -- the bijection ------------------------------------------------------------------------
    @property
    def bin_width(self) -> float:
        """The width of one pixel value in [-1, 1]: 2 / (bins - 1)."""
        return 2.0 / (self.bins - 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (data space) -> (z (N, dim), log |det dz/dx| (N,)); images pass the logit first."""
        x = x.to(self.device).float()
        if not self.images:
            return self.net(x.view(len(x), -1))
        d, a = self.bin_width, self.alpha
        p = a + (1 - 2 * a) * (x + 1 + d / 2) / (2 + d)
        logit = torch.log(p) - torch.log1p(-p)
        logdet = self.dim * math.log((1 - 2 * a) / (2 + d)) - (
            torch.log(p) + torch.log1p(-p)
        ).flatten(1).sum(1)
        z, ld = self.net(logit)
        return z, ld + logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, dim) -> x in data space (continuous: not rounded to the pixel grid)."""
        x = self.net.inverse(z.to(self.device).float())
        if not self.images:
            return x.view(len(x), *self.shape)
        d, a = self.bin_width, self.alpha
        return (torch.sigmoid(x) - a) / (1 - 2 * a) * (2 + d) - 1 - d / 2

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per item, in nats: a density on continuous (e.g. dequantised) x."""
        z, logdet = self.forward(x)
        return -0.5 * (z.pow(2).sum(1) + self.dim * math.log(2 * math.pi)) + logdet

    def dequantise(self, x: torch.Tensor, generator) -> torch.Tensor:
        """Images plus uniform noise over each pixel's bin (noise drawn on the CPU); points as is."""
        if not self.images:
            return x
        u = torch.rand(x.shape, generator=generator) - 0.5
        return x + self.bin_width * u.to(x)

    @torch.no_grad()
    def bits_per_dim(self, x: torch.Tensor, generator: torch.Generator | None = None) -> float:
        """The mean over images of -log2 P(pixel values) / dim, P by one dequantised draw
        (a bound on the discrete likelihood; ``generator`` defaults to seed 0)."""
        if not self.images:
            raise ValueError("bits_per_dim is for images (discrete pixels); use log_prob on points")
        x = self._check_items("x", x)
        generator = generator or torch.Generator().manual_seed(0)
        self.net.eval()
        lp = torch.cat([self.log_prob(self.dequantise(c, generator)).cpu()
                        for c in x.split(self.sample_batch)])  # fmt: skip
        nats = -(lp + self.dim * math.log(self.bin_width)) / self.dim
        return float(nats.mean() / math.log(2))

    # -- training -----------------------------------------------------------------------------
    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Maximum likelihood on dequantised ``x`` (labels unused): loss = -log p / dim."""
        x = self._check_items("x", x)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / self.warmup) if self.warmup else 1.0
        )
        self.net.train()
        self.losses = []
        bar = tqdm(range(self.steps), desc="flow training", leave=False, mininterval=2.0,
                   disable=not self.progress)  # fmt: skip
        for step in bar:
            batch = x[torch.randint(len(x), (self.batch_size,), generator=generator)]
            loss = -self.log_prob(self.dequantise(batch, generator)).mean() / self.dim
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), GRAD_CLIP)
            opt.step()
            sched.step()
            self.losses.append(loss.item())
            if step % 100 == 0:
                bar.set_postfix(loss=f"{sum(self.losses[-100:]) / len(self.losses[-100:]):.4f}")
        self.net.eval()

    # -- the protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, bias: float, generator: torch.Generator):
        """n samples from z ~ N(0, bias I) (bias = temperature on the variance); images are
        rounded to the pixel grid in [-1, 1]; labels all 0 (unconditional)."""
        n = check_int("n", n, minimum=1)
        bias = check_bias("bias", bias)
        self.net.eval()
        z = math.sqrt(bias) * torch.randn(n, self.dim, generator=generator)
        x = torch.cat([self.inverse(c).cpu() for c in z.split(self.sample_batch)])
        for _ in range(10):  # a far-out latent can overflow a coupling's inverse: draw it again
            bad = ~torch.isfinite(x.flatten(1)).all(1)
            if not bad.any():
                break
            z = math.sqrt(bias) * torch.randn(int(bad.sum()), self.dim, generator=generator)
            x[bad] = self.inverse(z).cpu()
        if not torch.isfinite(x).all():
            raise FloatingPointError("flow samples stay non-finite after 10 redraws")
        if self.images:
            d = self.bin_width
            x = (torch.round((x + 1) / d) * d - 1).clamp(-1, 1)
        return x, torch.zeros(n, dtype=torch.int64)

    def state_dict(self) -> dict:
        """The flow's weights and actnorm flags: plain tensors (``weights_only`` loads work)."""
        return {"net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != {"net"}:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with key net; got {keys}")
        self.net.load_state_dict(state["net"])

    def _check_items(self, name: str, x) -> torch.Tensor:
        return check_items(name, x, self.shape)
