"""Rectified flow (Liu et al., "Flow straight and fast", arXiv 2209.03003), the model of notebook 05.

1-rectified flow learns a velocity v(x_t, t) ~ x_1 - x_0 on the straight line
x_t = (1 - t) x_0 + t x_1, with x_0 ~ N(0, I) noise and x_1 data paired independently afresh in every
mini-batch. Its ODE dx/dt = v(x, t) carries noise (t = 0) to data (t = 1). Reflow trains the next
flow on given pairs (z, x) instead, usually the flow's own (z, Phi(z)): the coupling becomes
deterministic and the paths straighter, so fewer ODE steps suffice. Running the ODE backwards
(t = 1 -> 0) inverts the flow, data -> noise, which is how Zhu et al. (arXiv 2412.08175) make "real
pairs" for their collapse-avoiding reflows (``mcollapse.reflow``).

The velocity is an MLP for points (2-D toys) or the shared U-Net of ``mcollapse.models.unet`` for
images (time fed as 1000 t so the sinusoidal frequencies spread). Samples come from an exponential
moving average (EMA) of the weights; ``ema_decay=0`` makes the EMA a copy of the network.
"""

from __future__ import annotations

import copy
import numbers

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_choice, check_int, check_items, check_positive
from ._training import device_default, seeded, update_ema
from .protocol import Recorded
from .unet import UNet, time_embedding

NETS = ("mlp", "unet")
METHODS = ("euler", "heun")
TIME_SCALE = 1000.0  # t in [0, 1] -> 1000 t for the sinusoidal embedding


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
    """(x_t, target): the straight-line point (1 - t) x0 + t x1 and its velocity x1 - x0."""
    tt = t.view((-1,) + (1,) * (x0.ndim - 1)).to(x0.dtype)
    return (1 - tt) * x0 + tt * x1, x1 - x0


class MLPVelocity(nn.Module):
    """v(x, t) for flat points: an MLP on [x, sinusoidal features of t]."""

    def __init__(self, dim: int = 2, hidden: int = 256, layers: int = 3, time_dim: int = 32):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        self.time_dim = check_int("time_dim", time_dim, minimum=2)
        hidden = check_int("hidden", hidden, minimum=1)
        blocks, width = [], dim + time_dim
        for _ in range(check_int("layers", layers, minimum=1)):
            blocks += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*blocks, nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        return self.body(torch.cat([x, time_embedding(t, self.time_dim)], dim=1))


class RectifiedFlow(Recorded):
    """The model protocol of ``mcollapse.models`` for an unconditional rectified flow.

    ``fit`` trains 1-rectified flow for ``steps`` Adam steps (independent noise per batch);
    ``train_pairs`` / ``train_batches`` run a reflow round on given pairs. Both continue from the
    current weights, so a loaded model fine-tunes. ``sample`` integrates the ODE with ``sampler``
    and ``sample_steps``; labels are all 0 (the flow is unconditional).
    """

    def __init__(
        self,
        shape: tuple[int, ...] = (2,),
        *,
        net: str = "mlp",
        hidden: int = 256,
        layers: int = 3,
        width: int = 32,
        mults: tuple[int, ...] = (1, 2),
        blocks: int = 1,
        attention: bool = True,
        steps: int = 2000,
        batch_size: int = 256,
        lr: float = 1e-3,
        ema_decay: float = 0.0,
        sampler: str = "euler",
        sample_steps: int = 50,
        sample_batch: int = 2000,
        init_seed: int = 0,
        device=None,
        progress: bool = True,
    ):
        if (
            not isinstance(shape, tuple | list)
            or not shape
            or not all(isinstance(s, numbers.Integral) and s >= 1 for s in shape)
        ):
            raise ValueError(f"shape must be a non-empty tuple of positive integers, got {shape!r}")
        self.shape = tuple(int(s) for s in shape)
        self.kind = check_choice("net", net, NETS)
        if net == "mlp" and len(self.shape) != 1:
            raise ValueError(f"shape must be (dim,) for net='mlp', got {shape!r}")
        if net == "unet" and len(self.shape) != 3:
            raise ValueError(
                f"shape must be (channels, height, width) for net='unet', got {shape!r}"
            )
        self.steps = check_int("steps", steps, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.lr = check_positive("lr", lr)
        self.ema_decay = float(ema_decay)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")
        self.sampler = check_choice("sampler", sampler, METHODS)
        self.sample_steps = check_int("sample_steps", sample_steps, minimum=1)
        self.sample_batch = check_int("sample_batch", sample_batch, minimum=1)
        self.device = torch.device(device) if device is not None else device_default()
        self.progress = progress
        with seeded(check_int("init_seed", init_seed, minimum=0)):
            if net == "mlp":
                self.net = MLPVelocity(self.shape[0], hidden, layers)
            else:
                self.net = UNet(self.shape[0], 0, width, tuple(mults), blocks, attention)
        self.net.to(self.device)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.losses: list[float] = []

    # -- the velocity -------------------------------------------------------------------------
    def velocity(self, x: torch.Tensor, t: torch.Tensor, ema: bool = True) -> torch.Tensor:
        """v(x, t) for a batch, t in [0, 1] one per item (the EMA network unless ``ema=False``)."""
        net = self.ema if ema else self.net
        scale = TIME_SCALE if self.kind == "unet" else 1.0
        return net(x, scale * t)

    def loss(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean squared error of v(x_t, t) against x1 - x0 (summed over coordinates)."""
        xt, target = interpolate(x0, x1, t)
        err = (self.velocity(xt, t, ema=False) - target).pow(2)
        return err.flatten(1).sum(1).mean()

    # -- training -----------------------------------------------------------------------------
    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
            on_step=None) -> None:  # fmt: skip
        """1-rectified flow on data ``x``: fresh independent noise for every mini-batch.
        ``on_step(step)`` runs after every step (a benchmark's clock); True stops training."""
        x = self._check_items("x", x)
        n, b = len(x), self.batch_size

        def batch(gen):
            x1 = x[torch.randint(n, (b,), generator=gen)]
            return torch.randn(x1.shape, generator=gen), x1

        self.train_batches(batch, self.steps, generator, desc="1-RF training", on_step=on_step)

    def train_pairs(self, x0: torch.Tensor, x1: torch.Tensor, steps: int, generator) -> None:
        """A reflow round on fixed pairs (x0[i], x1[i]): mini-batches of pairs, never re-paired."""
        x0, x1 = self._check_items("x0", x0), self._check_items("x1", x1)
        if len(x0) != len(x1):
            raise ValueError(f"x0 and x1 must pair one to one, got {len(x0)} and {len(x1)} items")

        def batch(gen):
            idx = torch.randint(len(x0), (self.batch_size,), generator=gen)
            return x0[idx], x1[idx]

        self.train_batches(batch, steps, generator, desc="reflow training")

    def train_batches(self, batch, steps: int, generator, desc: str = "training",
                      on_step=None) -> None:  # fmt: skip
        """``steps`` Adam steps on ``batch(generator) -> (x0, x1)`` (CPU tensors); t ~ U(0, 1)."""
        steps = check_int("steps", steps, minimum=1)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.net.train()
        self.losses = []
        d = self.device
        bar = tqdm(range(steps), desc=desc, leave=False, mininterval=2.0, disable=not self.progress)
        for step in bar:
            x0, x1 = batch(generator)
            t = torch.rand(len(x0), generator=generator)
            loss = self.loss(x0.to(d), x1.to(d), t.to(d))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            update_ema(self.ema, self.net, self.ema_decay, step)
            self.losses.append(loss.item())
            if step % 100 == 0:
                bar.set_postfix(loss=f"{sum(self.losses[-100:]) / len(self.losses[-100:]):.4f}")
            if on_step is not None and on_step(step + 1):
                break
        self.net.eval()

    # -- the ODE ------------------------------------------------------------------------------
    @torch.no_grad()
    def ode(self, x, start: float, end: float, steps: int | None = None, method: str | None = None,
            noise: float = 0.0, jitter: float = 0.0, generator=None, path: bool = False):  # fmt: skip
        """Integrate dx/dt = v(x, t) from t = start to t = end with ``steps`` Euler or Heun steps.

        ``noise`` adds N(0, noise^2 |dt|) per step and ``jitter`` scales each step by 1 + U(-j, j)
        (renormalised to cover [start, end]): Zhu et al.'s stochastic inversion. Both need a
        ``generator``. Returns x at ``end`` (CPU), or the whole path (steps + 1, N, ...) if ``path``.
        """
        steps = check_int("steps", self.sample_steps if steps is None else steps, minimum=1)
        method = check_choice("method", method or self.sampler, METHODS)
        noise = check_positive("noise", noise, allow_zero=True)
        jitter = check_positive("jitter", jitter, allow_zero=True)
        if jitter >= 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
        if (noise or jitter) and generator is None:
            raise ValueError("generator must be given when noise or jitter is > 0")
        sizes = torch.ones(steps, dtype=torch.float64)
        if jitter:
            sizes = sizes + jitter * (
                2 * torch.rand(steps, generator=generator, dtype=torch.float64) - 1
            )
        grid = torch.cat([torch.zeros(1, dtype=torch.float64), sizes.cumsum(0) / sizes.sum()])
        times = (start + (end - start) * grid).tolist()
        x = self._check_items("x", x).to(self.device)
        self.ema.eval()
        out = [x.cpu()] if path else None
        for a, b in zip(times[:-1], times[1:], strict=True):
            dt = b - a
            ta = torch.full((len(x),), a, device=self.device)
            v = self.velocity(x, ta)
            if method == "heun":
                tb = torch.full((len(x),), b, device=self.device)
                v = 0.5 * (v + self.velocity(x + dt * v, tb))
            x = x + dt * v
            if noise:
                x = x + noise * abs(dt) ** 0.5 * torch.randn(x.shape, generator=generator).to(x)
            if path:
                out.append(x.cpu())
        return torch.stack(out) if path else x.cpu()

    def _batched(self, fn, x):
        return torch.cat(
            [fn(x[i : i + self.sample_batch]) for i in range(0, len(x), self.sample_batch)]
        )

    def generate(self, z: torch.Tensor, steps: int | None = None, method: str | None = None):
        """Noise -> data by the forward ODE (t = 0 -> 1)."""
        return self._batched(lambda b: self.ode(b, 0.0, 1.0, steps, method), z)

    def generate_pairs(self, n: int, generator, steps: int | None = None, method=None):
        """n pairs (z, Phi(z)): fresh noise and where the flow carries it; reflow's training data."""
        z = torch.randn((check_int("n", n, minimum=1), *self.shape), generator=generator)
        return z, self.generate(z, steps, method)

    def invert(self, x: torch.Tensor, steps: int | None = None, method: str | None = None,
               stochastic: bool = False, generator=None, noise: float = 1e-3,
               jitter: float = 0.1):  # fmt: skip
        """Data -> noise by the backward ODE (t = 1 -> 0); ``stochastic`` adds small noise and
        step jitter (Zhu et al.: std 1e-3 sqrt(dt), +-10% steps)."""
        kw = {"noise": noise, "jitter": jitter, "generator": generator} if stochastic else {}
        return self._batched(lambda b: self.ode(b, 1.0, 0.0, steps, method, **kw), x)

    @torch.no_grad()
    def straightness(self, z: torch.Tensor, steps: int = 32) -> float:
        """Liu et al.'s S = int_0^1 E ||(X_1 - X_0) - v(X_t, t)||^2 dt along the Euler paths from z,
        divided by E ||X_1 - X_0||^2 so that it reads the same at any scale: 0 = straight lines."""
        path = torch.cat([self.ode(b, 0.0, 1.0, steps, "euler", path=True)
                          for b in z.split(self.sample_batch)], dim=1)  # fmt: skip
        chord = path[-1] - path[0]
        steps_v = (path[1:] - path[:-1]) * steps  # the velocity used on each Euler step
        dev = (steps_v - chord[None]).pow(2).flatten(2).sum(2).mean()
        return float(dev / chord.pow(2).flatten(1).sum(1).mean())

    def trajectories(self, z: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """The Euler paths (steps + 1, N, ...) from z, for plotting."""
        return self.ode(z, 0.0, 1.0, steps, "euler", path=True)

    # -- the protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, bias: float, generator: torch.Generator):
        """n samples by the forward ODE; ``bias`` must be 1 (a flow has no sampling bias knob)."""
        if bias != 1.0:
            raise ValueError(f"bias must be 1.0 for a rectified flow (no bias knob), got {bias!r}")
        z, x = self.generate_pairs(n, generator)
        return x, torch.zeros(len(x), dtype=torch.int64)

    def state_dict(self) -> dict:
        """Network and EMA: plain tensors (``torch.load(weights_only=True)`` works)."""
        cpu = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        ema = {k: v.detach().cpu().clone() for k, v in self.ema.state_dict().items()}
        return {"net": cpu, "ema": ema}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != {"net", "ema"}:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with keys ema, net; got {keys}")
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])

    def _check_items(self, name: str, x) -> torch.Tensor:
        return check_items(name, x, self.shape)
