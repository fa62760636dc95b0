"""A class-conditional DDPM with classifier-free guidance, the model of MAD's section 4.

Training (Ho et al., arXiv 2006.11239): x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with t uniform
in 0..T-1, and the U-Net predicts eps (mean squared error). Labels are replaced by the null class
with probability ``label_dropout`` (10%), so one network is both the conditional and the
unconditional model (Ho & Salimans, arXiv 2207.12598). Samples come from the exponential moving
average (EMA) of the weights.

Sampling uses a respaced subset of ``sample_steps`` of the T training steps, with the generalised
update of DDIM (Song et al., arXiv 2010.02502): ``eta = 0`` is deterministic DDIM, ``eta = 1`` the
ancestral DDPM sampler on the respaced schedule (its posterior variance). The guided noise is
eps~ = (1 + w) eps(x, c) - w eps(x, null). MAD's sampling bias lambda maps to w = 1/lambda - 1, so
lambda = 1 is plain conditional sampling and lambda = 0.5 is guidance weight 1.
"""

from __future__ import annotations

import copy
import math
import numbers

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .._checks import check_bias, check_choice, check_int, check_positive
from ._training import device_default, seeded, update_ema
from .protocol import Recorded
from .unet import UNet

SCHEDULES = ("linear", "cosine")
SAMPLERS = {"ddim": 0.0, "ddpm": 1.0}  # name -> eta


class NoiseSchedule:
    """betas and the cumulative products abar_t = prod_{s <= t} (1 - beta_s), t = 0..T-1.

    ``linear``: Ho et al.'s 1e-4..0.02 for T = 1000, rescaled by 1000/T so that any T covers the same
    noise range. ``cosine``: Nichol & Dhariwal (arXiv 2102.09672), betas capped at 0.999.
    """

    def __init__(self, timesteps: int = 1000, kind: str = "cosine"):
        self.timesteps = check_int("timesteps", timesteps, minimum=2)
        self.kind = check_choice("schedule", kind, SCHEDULES)
        t = self.timesteps
        if kind == "linear":
            scale = 1000.0 / t
            betas = torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), t, dtype=torch.float64)
        else:
            s = 0.008
            steps = torch.arange(t + 1, dtype=torch.float64) / t
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        self.betas = betas
        self.abar = torch.cumprod(1 - betas, dim=0)

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(abar_t), sqrt(1 - abar_t)): the mean factor and the std of x_t given x_0."""
        a = self.abar.to(t.device)[t]
        return a.sqrt().float(), (1 - a).sqrt().float()

    def noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The forward process q(x_t | x_0), in closed form."""
        mean, std = self.marginal(t)
        shape = (-1,) + (1,) * (x0.ndim - 1)
        return mean.view(shape) * x0 + std.view(shape) * eps

    def respaced(self, steps: int) -> list[int]:
        """``steps`` training times from T-1 down to 0, evenly spaced."""
        steps = check_int("sample_steps", steps, minimum=1, maximum=self.timesteps)
        times = torch.linspace(self.timesteps - 1, 0, steps).round().long().tolist()
        return sorted(set(times), reverse=True)


def sample_loop(eps_fn, shape, schedule: NoiseSchedule, steps: int, eta: float, generator,
                clip: bool = True, device=None, progress: bool = False) -> torch.Tensor:  # fmt: skip
    """Run the generalised DDIM update from pure noise with ``eps_fn(x_t, t_tensor) -> eps``.

    All randomness is drawn on the CPU from ``generator`` (so a seed gives the same images on any
    device). ``clip`` clamps the predicted x_0 to [-1, 1], as is usual for images.
    """
    eta = check_positive("eta", eta, allow_zero=True)
    device = device or torch.device("cpu")
    times = schedule.respaced(steps)
    abar = schedule.abar
    x = torch.randn(shape, generator=generator).to(device)
    for i, t in enumerate(tqdm(times, desc="sampling", leave=False, disable=not progress)):
        a_t = abar[t].item()
        a_prev = abar[times[i + 1]].item() if i + 1 < len(times) else 1.0
        tt = torch.full((shape[0],), t, device=device, dtype=torch.long)
        eps = eps_fn(x, tt)
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if clip:
            x0 = x0.clamp(-1, 1)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn(shape, generator=generator).to(device)
    return x


def guided_eps(net, x, t, y, w: float) -> torch.Tensor:
    """Classifier-free guidance: (1 + w) eps(x, y) - w eps(x, null); w = 0 is the conditional net."""
    if w == 0:
        return net(x, t, y)
    null = torch.full_like(y, net.num_classes)
    cond, uncond = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    return (1 + w) * cond - w * uncond


def guidance_weight(bias: float) -> float:
    """MAD's lambda -> the guidance weight w = 1/lambda - 1 (lambda = 1/(1 + w))."""
    return 1.0 / check_bias("bias", bias) - 1.0


class DDPM(Recorded):
    """The model protocol of ``mcollapse.models`` around a U-Net; see the module docstring.

    Training runs a fixed number of optimiser ``steps`` whatever the data size, so every generation
    of a loop gets the same budget. ``fit`` retrains from the current weights (a fresh model is
    random; a loaded one fine-tunes).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 8, 8),
        num_classes: int = 10,
        *,
        timesteps: int = 500,
        schedule: str = "cosine",
        width: int = 64,
        mults: tuple[int, ...] = (1, 2),
        blocks: int = 1,
        steps: int = 3000,
        batch_size: int = 128,
        lr: float = 1e-3,
        warmup: int = 100,
        ema_decay: float = 0.999,
        label_dropout: float = 0.1,
        sampler: str = "ddim",
        sample_steps: int = 50,
        sample_batch: int = 1000,
        init_seed: int = 0,
        device=None,
        progress: bool = True,
    ):
        if (
            not isinstance(image_shape, tuple | list)
            or len(image_shape) != 3
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in image_shape)
        ):
            raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.schedule = NoiseSchedule(timesteps, schedule)
        self.steps = check_int("steps", steps, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.lr = check_positive("lr", lr)
        self.warmup = check_int("warmup", warmup, minimum=0)
        self.ema_decay = float(ema_decay)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        self.label_dropout = float(label_dropout)
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {label_dropout!r}")
        self.sampler = check_choice("sampler", sampler, SAMPLERS)
        self.sample_steps = check_int("sample_steps", sample_steps, minimum=1, maximum=timesteps)
        self.sample_batch = check_int("sample_batch", sample_batch, minimum=1)
        self.device = torch.device(device) if device is not None else device_default()
        self.progress = progress
        with seeded(check_int("init_seed", init_seed, minimum=0)):
            self.net = UNet(self.image_shape[0], num_classes, width, tuple(mults), blocks)
        self.net.to(self.device)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.priors = torch.full((num_classes,), 1.0 / num_classes)
        self.losses: list[float] = []

    # -- training ---------------------------------------------------------------------------
    def loss(self, x0, y, t, eps, drop) -> torch.Tensor:
        """The eps-prediction loss on given noise, times and label-dropout mask (all on device)."""
        y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return F.mse_loss(self.net(self.schedule.noise(x0, t, eps), t, y), eps)

    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
            on_step=None) -> None:  # fmt: skip
        """``steps`` Adam steps on mini-batches drawn with replacement; then EMA is the sampler.
        ``on_step(step)`` runs after every step (a benchmark's clock); True stops training."""
        x, y = _check_data(x, y, self.image_shape, self.num_classes)
        counts = torch.bincount(y, minlength=self.num_classes).double()
        self.priors = (counts / counts.sum()).float()
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / self.warmup) if self.warmup else 1.0
        )
        self.net.train()
        self.losses = []
        n, b, d = len(x), self.batch_size, self.device
        bar = tqdm(range(self.steps), desc="DDPM training", leave=False, mininterval=2.0,
                   disable=not self.progress)  # fmt: skip
        for step in bar:
            idx = torch.randint(n, (b,), generator=generator)
            t = torch.randint(self.schedule.timesteps, (b,), generator=generator)
            eps = torch.randn((b, *self.image_shape), generator=generator)
            drop = torch.rand(b, generator=generator) < self.label_dropout
            loss = self.loss(x[idx].to(d), y[idx].to(d), t.to(d), eps.to(d), drop.to(d))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            update_ema(self.ema, self.net, self.ema_decay, step)
            self.losses.append(loss.item())
            if step % 100 == 0:
                bar.set_postfix(loss=f"{sum(self.losses[-100:]) / len(self.losses[-100:]):.4f}")
            if on_step is not None and on_step(step + 1):
                break
        self.net.eval()

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, bias: float, generator: torch.Generator):
        """n images in [-1, 1] with their labels, drawn from the training class frequencies."""
        n = check_int("n", n, minimum=1)
        w = guidance_weight(bias)
        labels = torch.multinomial(self.priors, n, replacement=True, generator=generator)
        self.ema.eval()
        out = []
        for start in range(0, n, self.sample_batch):
            y = labels[start : start + self.sample_batch].to(self.device)
            x = sample_loop(
                lambda x, t, y=y: guided_eps(self.ema, x, t, y, w),
                (len(y), *self.image_shape),
                self.schedule,
                self.sample_steps,
                SAMPLERS[self.sampler],
                generator,
                device=self.device,
            )
            out.append(x.clamp(-1, 1).cpu())
        return torch.cat(out), labels

    # -- persistence ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Network, EMA and class priors: plain tensors (``torch.load(weights_only=True)``)."""
        cpu = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        ema = {k: v.detach().cpu().clone() for k, v in self.ema.state_dict().items()}
        return {"net": cpu, "ema": ema, "priors": self.priors.clone()}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != {"net", "ema", "priors"}:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with keys ema, net, priors; got {keys}")
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        priors = torch.as_tensor(state["priors"]).float()
        if priors.shape != (self.num_classes,):
            raise ValueError(f"priors must have shape ({self.num_classes},), got {priors.shape}")
        self.priors = priors.clone()


def _check_data(x, y, image_shape, num_classes):
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != image_shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"x must be a tensor of shape (N, {', '.join(map(str, image_shape))}), got {got}"
        )
    if not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of shape ({len(x)},)")
    if len(x) == 0 or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"y must hold labels in [0, {num_classes - 1}] for N >= 1 items")
    return x.float(), y
