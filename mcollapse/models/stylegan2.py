"""A small but complete StyleGAN-2 (Karras et al., CVPR 2020, arXiv 1912.04958) in plain PyTorch.

What MAD's fully synthetic loop trains (Alemohammad et al., arXiv 2307.01850, section 3.2), only
smaller: a mapping network z -> w (2 layers, as StyleGAN2-ADA's CIFAR preset), a learned constant
4x4 input, modulated and demodulated 3x3 convolutions, per-pixel noise inputs with learned
strengths, a skip generator (one toRGB per resolution, upsampled and summed), a residual
discriminator ending in minibatch standard deviation, the non-saturating logistic loss, lazy R1
regularisation, an exponential moving average (EMA) of the generator, and truncation of w toward
its running mean. Every layer uses the equalised learning rate (weights drawn N(0, 1) and scaled
by 1 / sqrt(fan_in) at run time). The discriminator downsamples with the paper's [1, 3, 3, 1]
FIR filter; the generator upsamples by bilinear interpolation, which is that filter's upsampling
away from the image border and several times faster on a CPU.

Optional (``Training.augment``, off by default): differentiable augmentation of every image the
discriminator sees, real and fake alike (DiffAugment, Zhao et al. 2020; the point StyleGAN2-ADA
makes too: with ~1k images the discriminator overfits). On the 1,297 8x8 digits at 1,500 steps
of batch 32, generation-1 FID at n = 1,000 (mean over seeds): 15.3 as the cpu profile had it
(lr 0.0025, 4 seeds), 7.7 at lr 0.01 (3), 5.2 at lr 0.02 with ``augment="color"`` (4; 9.7
without, 1);
translation (at lr 0.0025 and 0.01) and cutout (at 0.0025) hurt (FID 15-35): the short run is
undertrained rather than overfitted, and the colour jitter mostly steadies a larger learning rate.
Trained longer at lr 0.02 with colour (3,750 steps, notebook 02's cpu profile) it reaches 1.0-1.7
over 3 seeds (floor 0.32).

Left out, as the CIFAR preset leaves them out: path-length regularisation and style mixing. The R1
weight defaults to the paper's heuristic 0.0002 res^2 / batch; on small data sets a larger one keeps
the discriminator from overfitting (notebook 02 uses 1). Plain
FP32, no custom CUDA ops, any device (cuda when available). ``bias`` in ``sample`` is the
truncation psi: psi = 1 samples the model as trained, psi -> 0 pulls every w toward the mean w.
The model is unconditional (as in MAD): it ignores training labels and its samples carry label -1.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import seeds
from .._checks import check_bias, check_int, check_positive
from .protocol import Recorded

AUGMENTS = ("translation", "color", "cutout")

RESOLUTIONS = (8, 16, 32)
SQRT2 = math.sqrt(2.0)
UNLABELLED = -1  # the label of every sample: the model is unconditional


def device() -> torch.device:
    """cuda when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------------------------
# Layers with the equalised learning rate
# --------------------------------------------------------------------------------------------


class Dense(nn.Module):
    """Fully connected layer; ``lr_mul`` scales the effective learning rate (0.01 in the mapping)."""

    def __init__(self, fan_in, fan_out, bias_init=0.0, lr_mul=1.0, activate=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fan_out, fan_in))  # N(0, 1 / lr_mul^2): see init
        self.bias = nn.Parameter(torch.full((fan_out,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(fan_in), lr_mul, activate

    def forward(self, x):
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activate else x


class Conv(nn.Module):
    """Plain 3x3 (or 1x1) convolution for the discriminator; ``down`` blurs then strides by 2."""

    def __init__(self, cin, cout, k=3, bias=True, activate=True, down=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.activate, self.down = 1 / math.sqrt(cin * k * k), activate, down

    def forward(self, x):
        w = self.weight * self.scale
        if self.down:  # blur (pad so that a k x k stride-2 conv halves the size), then stride 2
            x = _fir(x, pad=(self.weight.shape[-1] + 1) // 2)
            x = F.conv2d(x, w, self.bias, stride=2)
        else:
            x = F.conv2d(x, w, self.bias, padding=self.weight.shape[-1] // 2)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activate else x


_FIR = torch.tensor([1.0, 3.0, 3.0, 1.0])


def _kernel(x, gain=1.0):
    k = torch.outer(_FIR, _FIR).to(x)
    return (k / k.sum() * gain)[None, None].repeat(x.shape[1], 1, 1, 1)


def _fir(x, pad):
    """Depthwise [1, 3, 3, 1] low-pass filter with ``pad`` zeros on each side."""
    return F.conv2d(F.pad(x, [pad] * 4), _kernel(x), groups=x.shape[1])


def downsample(x):
    """Low-pass then keep every second pixel: (N, C, H, W) -> (N, C, H/2, W/2)."""
    return F.conv2d(F.pad(x, [1] * 4), _kernel(x), stride=2, groups=x.shape[1])


def upsample(x):
    """(N, C, H, W) -> (N, C, 2H, 2W): zero-insertion by 2 then the [1, 3, 3, 1] filter (gain 4)
    is bilinear interpolation with half-pixel centres; this computes it that way (several times
    faster on a CPU), replicating the border pixel where the transposed convolution pads zeros."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def modulated_conv2d(x, weight, styles, demodulate=True, fused=False, eps=1e-8):
    """StyleGAN-2's convolution: scale the weights per sample and input channel by ``styles``,
    then (``demodulate``) rescale each output channel's weights to unit L2 norm, so that
    unit-variance input gives unit-variance output whatever the style.

    ``fused=True`` builds the per-sample weights and runs one grouped convolution, as the paper
    writes it; ``fused=False`` (default, much faster on a CPU) scales the activations instead:
    conv(x * s, W) * d is the same function, since both factors are per channel.
    x: (N, Cin, H, W); weight: (Cout, Cin, k, k) already scaled; styles: (N, Cin).
    """
    n, cin, h, w_ = x.shape
    cout, _, k, _ = weight.shape
    if not fused:
        out = F.conv2d(x * styles[:, :, None, None], weight, padding=k // 2)
        if demodulate:  # d[n, o] = 1 / sqrt(sum_{i, k} (W[o, i, k] s[n, i])^2)
            d = torch.rsqrt(styles.square() @ weight.square().sum(dim=(2, 3)).T + eps)
            out = out * d[:, :, None, None]
        return out
    w = weight[None] * styles[:, None, :, None, None]  # (N, Cout, Cin, k, k)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + eps)
    out = F.conv2d(x.reshape(1, n * cin, h, w_), w.reshape(n * cout, cin, k, k), padding=k // 2,
                   groups=n)  # fmt: skip
    return out.reshape(n, cout, h, w_)


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally upsampling first), noise with a learned strength, bias, lrelu."""

    def __init__(self, cin, cout, w_dim, resolution, up=False):
        super().__init__()
        self.affine = Dense(w_dim, cin, bias_init=1.0)  # styles start at 1
        self.weight = nn.Parameter(torch.empty(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(()))  # learned, starts at 0
        self.register_buffer("noise_const", torch.empty(1, 1, resolution, resolution))
        self.scale, self.up, self.resolution = 1 / math.sqrt(cin * 9), up, resolution

    def forward(self, x, w, generator, noise="random"):
        if self.up:
            x = upsample(x)
        x = modulated_conv2d(x, self.weight * self.scale, self.affine(w))
        if noise == "random":
            noise = torch.randn(len(x), 1, self.resolution, self.resolution, generator=generator,
                                device=x.device)  # fmt: skip
        else:  # one fixed noise image for every sample, drawn at initialisation
            noise = self.noise_const
        x = x + noise * self.noise_strength + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * SQRT2


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation, as in the paper."""

    def __init__(self, cin, channels, w_dim):
        super().__init__()
        self.affine = Dense(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.empty(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.scale = 1 / math.sqrt(cin)

    def forward(self, x, w):
        styles = self.affine(w) * self.scale
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return x + self.bias[None, :, None, None]


# --------------------------------------------------------------------------------------------
# Generator and discriminator
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Architecture sizes. ``channels`` is the width at every resolution (capped, as in the CIFAR
    preset, whose feature maps are 512 at every resolution). ``mapping_lr_mul`` scales the mapping
    network's learning rate (and its initial weights by its inverse, the equalised learning rate)."""

    resolution: int = 8
    image_channels: int = 1
    z_dim: int = 64
    w_dim: int = 64
    mapping_layers: int = 2
    channels: int = 64
    mbstd_group: int = 4
    mapping_lr_mul: float = 0.01

    def __post_init__(self):
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution!r}")
        check_int("image_channels", self.image_channels, minimum=1)
        for name in ("z_dim", "w_dim", "mapping_layers", "channels", "mbstd_group"):
            check_int(name, getattr(self, name), minimum=1)
        check_positive("mapping_lr_mul", self.mapping_lr_mul)


class Mapping(nn.Module):
    """z -> normalise (pixel norm) -> ``mapping_layers`` dense layers at lr x ``mapping_lr_mul``
    (the paper's 0.01) -> w."""

    def __init__(self, cfg: Config):
        super().__init__()
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        self.layers = nn.Sequential(*[Dense(a, b, lr_mul=cfg.mapping_lr_mul, activate=True)
                                      for a, b in zip(dims[:-1], dims[1:], strict=True)])  # fmt: skip

    def forward(self, z):
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.layers(z)


class Generator(nn.Module):
    """Mapping network + synthesis network with skip outputs; tracks the mean w for truncation."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.mapping = Mapping(cfg)
        self.const = nn.Parameter(torch.empty(c, 4, 4))
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.convs = nn.ModuleList([StyledConv(c, c, cfg.w_dim, 4)])
        self.to_rgb = nn.ModuleList([ToRGB(c, cfg.image_channels, cfg.w_dim)])
        res = 8
        while res <= cfg.resolution:
            self.convs.append(StyledConv(c, c, cfg.w_dim, res, up=True))
            self.convs.append(StyledConv(c, c, cfg.w_dim, res))
            self.to_rgb.append(ToRGB(c, cfg.image_channels, cfg.w_dim))
            res *= 2

    def forward(self, z, generator, psi=1.0, noise="random", track_w_avg=False):
        """Images (N, C, res, res), unbounded (the data are in [-1, 1]; ``sample`` clamps).

        ``psi`` < 1 truncates: w <- w_avg + psi (w - w_avg). ``noise="const"`` uses the fixed noise
        images drawn at initialisation instead of fresh ones (the paper's const noise mode).
        """
        if noise not in ("random", "const"):
            raise ValueError(f"noise must be 'random' or 'const', got {noise!r}")
        w = self.mapping(z)
        if track_w_avg:  # running mean of w, as the paper tracks it during training
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, 0.995))
        if psi != 1:
            w = self.w_avg.lerp(w, psi)
        return self.synthesis(w, generator, noise)

    def synthesis(self, w, generator, noise="random"):
        x = self.const[None].expand(len(w), -1, -1, -1)
        x = self.convs[0](x, w, generator, noise)
        img = self.to_rgb[0](x, w)
        for i, to_rgb in enumerate(self.to_rgb[1:]):
            x = self.convs[1 + 2 * i](x, w, generator, noise)
            x = self.convs[2 + 2 * i](x, w, generator, noise)
            img = upsample(img) + to_rgb(x, w)
        return img


class Discriminator(nn.Module):
    """fromRGB, residual blocks halving the resolution down to 4x4, then minibatch standard
    deviation, a 3x3 conv, and two dense layers to one logit."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.from_rgb = Conv(cfg.image_channels, c, k=1)
        blocks = []
        res = cfg.resolution
        while res > 4:
            blocks.append(nn.ModuleDict({
                "conv0": Conv(c, c), "conv1": Conv(c, c, down=True),
                "skip": Conv(c, c, k=1, bias=False, activate=False, down=True),
            }))  # fmt: skip
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        self.conv = Conv(c + 1, c)
        self.fc = Dense(c * 16, c, activate=True)
        self.out = Dense(c, 1)

    def forward(self, x):
        x = self.from_rgb(x)
        for b in self.blocks:
            x = (b["skip"](x) + b["conv1"](b["conv0"](x))) / SQRT2
        x = minibatch_stddev(x, self.cfg.mbstd_group)
        x = self.conv(x)
        return self.out(self.fc(x.flatten(1)))[:, 0]


def minibatch_stddev(x, group_size=4):
    """Append one feature map: the standard deviation over groups of samples, averaged over
    features and pixels. It lets the discriminator see a lack of variety in a batch."""
    n, c, h, w = x.shape
    g = math.gcd(n, min(group_size, n))  # a group size that divides the batch
    y = x.reshape(g, -1, c * h * w)  # sample i is in group i mod (n / g), as in the paper
    y = y - y.mean(dim=0)
    y = (y.square().mean(dim=0) + 1e-8).sqrt().mean(dim=1)  # (n / g,)
    y = y.repeat(g)[:, None, None, None].expand(n, 1, h, w)
    return torch.cat([x, y], dim=1)


# --------------------------------------------------------------------------------------------
# Differentiable augmentation (Zhao et al. 2020, "DiffAugment", arXiv 2006.10738)
# --------------------------------------------------------------------------------------------


def parse_augment(augment: str) -> tuple[str, ...]:
    """``"none"`` or a comma-separated subset of ``AUGMENTS`` -> the tuple of transforms, in the
    order given."""
    if not isinstance(augment, str):
        raise ValueError(f"augment must be a string, got {augment!r}")
    if augment == "none":
        return ()
    kinds = tuple(k.strip() for k in augment.split(","))
    if not kinds or any(k not in AUGMENTS for k in kinds) or len(set(kinds)) != len(kinds):
        raise ValueError(
            f"augment must be 'none' or a comma-separated subset of {', '.join(AUGMENTS)}; "
            f"got {augment!r}"
        )
    return kinds


def diff_augment(x: torch.Tensor, kinds, generator: torch.Generator) -> torch.Tensor:
    """Random transforms that gradients flow through, one draw per image, all from
    ``generator`` (two calls with generators in the same state transform alike).

    ``translation``: shift by an integer in [-res/8, res/8] pixels on each axis (1 px at 8 px),
    filling with -1 (the background); ``color``: brightness + U(-0.5, 0.5), saturation x U(0, 2),
    contrast x U(0.5, 1.5), as DiffAugment's colour policy (saturation does nothing to one channel); ``cutout``: a res/2 square at a random
    place set to 0. The discriminator sees real and fake images through the same kind of random
    transform, so it cannot memorise a few real images, while the generator still learns the
    untransformed distribution, since every transform is applied to both sides and none is a
    flip or rotation that would change what a digit is."""
    n, c, h, w = x.shape
    dev = x.device

    def uniform(*shape):
        return torch.rand(*shape, generator=generator, device=generator.device).to(dev, x.dtype)

    for kind in kinds:
        if kind == "color":
            x = x + (uniform(n, 1, 1, 1) - 0.5)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (uniform(n, 1, 1, 1) * 2) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (uniform(n, 1, 1, 1) + 0.5) + mean
        elif kind == "translation":
            s = max(1, int(h / 8 + 0.5))
            shift = torch.randint(-s, s + 1, (2, n, 1, 1), generator=generator,
                                  device=generator.device).to(dev)  # fmt: skip
            padded = F.pad(x, [s] * 4, value=-1.0).permute(0, 2, 3, 1)  # (N, H + 2s, W + 2s, C)
            rows = torch.arange(h, device=dev)[None, :, None] + s - shift[0]  # (N, H, 1)
            cols = torch.arange(w, device=dev)[None, None, :] + s - shift[1]  # (N, 1, W)
            x = padded[torch.arange(n, device=dev)[:, None, None], rows, cols].permute(0, 3, 1, 2)
        else:  # cutout
            size = h // 2, w // 2
            off_y = torch.randint(0, h + 1 - size[0] % 2, (n, 1, 1), generator=generator,
                                  device=generator.device).to(dev)  # fmt: skip
            off_x = torch.randint(0, w + 1 - size[1] % 2, (n, 1, 1), generator=generator,
                                  device=generator.device).to(dev)  # fmt: skip
            ys = torch.arange(h, device=dev)[None, :, None] - off_y + size[0] // 2
            xs = torch.arange(w, device=dev)[None, None, :] - off_x + size[1] // 2
            keep = ~(((ys >= 0) & (ys < size[0])) & ((xs >= 0) & (xs < size[1])))
            x = x * keep[:, None].to(x.dtype)
    return x


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def d_logistic_loss(real_logits, fake_logits):
    """Non-saturating logistic loss, discriminator side: softplus(D(fake)) + softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating_loss(fake_logits):
    """Non-saturating generator loss: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(discriminator, real, gamma):
    """R1 (Mescheder et al. 2018): gamma / 2 * E ||grad_x D(x)||^2 on real data; differentiable.

    A discriminator that ignores its input has zero gradient, hence zero penalty.
    """
    real = real.detach().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True, materialize_grads=True)
    return 0.5 * gamma * grad.square().sum(dim=(1, 2, 3)).mean()


# --------------------------------------------------------------------------------------------
# The model protocol
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Training:
    """Training settings (StyleGAN-2 as MAD trained it, shrunk for 8x8 digits). ``gamma=None`` takes the paper's heuristic
    0.0002 * resolution^2 / batch. The generator EMA's half-life is ``ema_images`` images, but at
    most ``ema_ramp`` times the images seen so far (StyleGAN2-ADA's ramp-up). ``augment`` is
    ``"none"`` or a comma-separated subset of ``AUGMENTS`` (see ``diff_augment``), applied to
    real and fake images before the discriminator in both losses and in R1."""

    steps: int = 2000
    batch: int = 64
    lr: float = 0.0025
    betas: tuple = (0.0, 0.99)
    gamma: float | None = None
    r1_every: int = 16
    ema_images: float = 10_000.0
    ema_ramp: float | None = 0.05
    augment: str = "none"

    def __post_init__(self):
        check_int("steps", self.steps, minimum=1)
        check_int("batch", self.batch, minimum=2)
        check_positive("lr", self.lr)
        ok = len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)
        if not ok:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.gamma is not None:
            check_positive("gamma", self.gamma, allow_zero=True)
        check_int("r1_every", self.r1_every, minimum=1)
        check_positive("ema_images", self.ema_images)
        if self.ema_ramp is not None:
            check_positive("ema_ramp", self.ema_ramp)
        parse_augment(self.augment)

    def r1_gamma(self, resolution: int) -> float:
        return 0.0002 * resolution**2 / self.batch if self.gamma is None else self.gamma


class StyleGAN2(Recorded):
    """The model protocol of ``mcollapse.models`` around a StyleGAN-2 generator / discriminator.

    ``fit`` trains from scratch (MAD retrains every generation from scratch), with initial weights,
    batches and noise all drawn from its ``generator``; ``sample`` draws from the EMA generator
    with truncation psi = ``bias``, clamped to [-1, 1].
    """

    finetunes = False  # fit builds fresh networks: MAD retrains every generation from scratch

    def __init__(self, config: Config | None = None, training: Training | None = None,
                 progress: bool = False):  # fmt: skip
        self.config = config or Config()
        self.training = training or Training()
        if not isinstance(self.config, Config) or not isinstance(self.training, Training):
            raise ValueError("config must be a stylegan2.Config and training a stylegan2.Training")
        self.progress = progress
        self.device = device()
        seed = torch.Generator().manual_seed(0)  # the initial weights are replaced in fit()
        self.G, self.D = self._build(seed)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)

    def _build(self, generator):
        """Fresh networks whose initial weights come from ``generator`` (no global RNG)."""
        G, D = Generator(self.config), Discriminator(self.config)
        init_weights(G, generator)
        init_weights(D, generator)
        return G.to(self.device), D.to(self.device)

    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Train on images x (N, C, res, res) in [-1, 1]; labels are ignored (unconditional)."""
        cfg, tr = self.config, self.training
        want = (cfg.image_channels, cfg.resolution, cfg.resolution)
        if not torch.is_tensor(x) or x.ndim != 4 or tuple(x.shape[1:]) != want or len(x) < 2:
            raise ValueError(f"x must be images of shape (N >= 2, {want}), got {_shape(x)}")
        seed = int(torch.randint(2**62, (1,), generator=generator))
        g_init, g_data = seeds.torch_generator(seed, "init"), seeds.torch_generator(seed, "data")
        g_noise = seeds.torch_generator(seed, "noise", device=self.device)
        g_aug = seeds.torch_generator(seed, "augment", device=self.device)
        kinds = parse_augment(tr.augment)

        def aug(images):  # what the discriminator sees: real and fake alike
            return diff_augment(images, kinds, g_aug) if kinds else images

        self.G, self.D = self._build(g_init)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        data = x.detach().float().to(self.device)
        gamma = tr.r1_gamma(cfg.resolution)
        c = tr.r1_every / (tr.r1_every + 1)  # lazy regularisation: adjust D's Adam (paper App. B)
        opt_g = torch.optim.Adam(self.G.parameters(), lr=tr.lr, betas=tr.betas)
        opt_d = torch.optim.Adam(self.D.parameters(), lr=tr.lr * c,
                                 betas=tuple(b**c for b in tr.betas))  # fmt: skip
        n = len(data)
        batch = min(tr.batch, n)
        order, pos = torch.randperm(n, generator=g_data), 0
        bar = tqdm(range(tr.steps), desc="StyleGAN-2", unit="step", disable=not self.progress,
                   leave=False)  # fmt: skip
        for step in bar:
            if pos + batch > n:
                order, pos = torch.randperm(n, generator=g_data), 0
            real = aug(data[order[pos : pos + batch].to(self.device)])
            pos += batch

            # discriminator: logistic loss, plus R1 every r1_every steps (scaled by the interval)
            z = torch.randn(batch, cfg.z_dim, generator=g_noise, device=self.device)
            with torch.no_grad():
                fake = self.G(z, generator=g_noise)
            loss_d = d_logistic_loss(self.D(real), self.D(aug(fake)))
            if gamma > 0 and step % tr.r1_every == 0:
                loss_d = loss_d + r1_penalty(self.D, real, gamma) * tr.r1_every
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # generator: non-saturating loss; track the mean w for truncation
            z = torch.randn(batch, cfg.z_dim, generator=g_noise, device=self.device)
            self.D.requires_grad_(False)
            fake = self.G(z, generator=g_noise, track_w_avg=True)
            loss_g = g_nonsaturating_loss(self.D(aug(fake)))
            self.D.requires_grad_(True)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            self._update_ema((step + 1) * batch, batch)
            if step % 100 == 0:
                bar.set_postfix(d=f"{loss_d.item():.3f}", g=f"{loss_g.item():.3f}")

    @torch.no_grad()
    def _update_ema(self, seen: int, batch: int) -> None:
        half_life = self.training.ema_images
        if self.training.ema_ramp is not None:
            half_life = min(half_life, seen * self.training.ema_ramp)
        beta = 0.5 ** (batch / max(half_life, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    @torch.no_grad()
    def sample(self, n: int, bias: float, generator: torch.Generator):
        """n images from the EMA generator with truncation psi = ``bias``; labels are -1."""
        n = check_int("n", n, minimum=1)
        psi = check_bias("bias", bias)
        seed = int(torch.randint(2**62, (1,), generator=generator))
        g = torch.Generator(self.device).manual_seed(seed)
        out = []
        for start in range(0, n, 512):
            z = torch.randn(min(512, n - start), self.config.z_dim, generator=g, device=self.device)
            out.append(self.G_ema(z, psi=psi, generator=g).clamp(-1, 1).cpu())
        return torch.cat(out), torch.full((n,), UNLABELLED, dtype=torch.int64)

    def state_dict(self) -> dict:
        """CPU tensors and plain numbers only, so ``torch.load(weights_only=True)`` reads it."""

        def cpu(module):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

        return {"config": asdict(self.config), "G": cpu(self.G), "D": cpu(self.D),
                "G_ema": cpu(self.G_ema)}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != {"config", "G", "D", "G_ema"}:
            raise ValueError(
                "state must be a dict with keys config, D, G, G_ema (from StyleGAN2.state_dict)"
            )
        if state["config"] != asdict(self.config):
            raise ValueError(
                f"state is for config {state['config']}, this model has {asdict(self.config)}"
            )
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])


@torch.no_grad()
def init_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Draw every weight N(0, 1) (N(0, 1 / lr_mul^2) in dense layers) and the constant input from
    ``generator``, in module order; biases keep their constant initial values."""
    for m in module.modules():
        if isinstance(m, Dense | Conv | StyledConv | ToRGB):
            m.weight.normal_(0.0, 1.0 / getattr(m, "lr_mul", 1.0), generator=generator)
        if isinstance(m, StyledConv):
            m.noise_const.normal_(generator=generator)
        if isinstance(m, Generator):
            m.const.normal_(generator=generator)
    return module


def _shape(t) -> str:
    return f"shape {tuple(t.shape)}" if torch.is_tensor(t) else repr(t)
