"""Small pieces every trained model needs: the default device, seeded initial weights, and the
exponential moving average (EMA) of the weights that the samplers use."""

from __future__ import annotations

from contextlib import contextmanager

import torch


def device_default() -> torch.device:
    """cuda when there is a GPU, else the CPU: never a hard-coded device."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def seeded(seed: int):
    """Run a block (building a network) under a fixed torch seed; restore the global RNG after."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float, step: int) -> None:
    """ema <- decay * ema + (1 - decay) * net, with a short warm-up so early steps count."""
    decay = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), net.parameters(), strict=True):
        e.lerp_(p, 1 - decay)
    for e, p in zip(ema.buffers(), net.buffers(), strict=True):
        e.copy_(p)
