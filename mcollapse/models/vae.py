"""A convolutional variational autoencoder (Kingma & Welling, arXiv 1312.6114), the model of
Shumailov et al.'s VAE experiment ("The curse of recursion", arXiv 2305.17493; Nature 2024): on
MNIST, each generation trains a fresh VAE on the previous decoder's samples, and the latent means
of every generation's samples under the generation-0 encoder (``encode``) spread less and less.

The encoder maps an image to a diagonal Gaussian q(z | x) = N(mu, diag sigma^2) by two stride-2
convolutions and two dense layers; the decoder mirrors it to Bernoulli pixel probabilities.
Pixels in [-1, 1] become targets in [0, 1] for the binary cross-entropy (BCE), so the loss is the
negative evidence lower bound: BCE(x, decoder(z)) + KL(q(z | x) || N(0, I)), z by the
reparameterisation trick. Any resolution divisible by 4 (8x8 digits, 28x28 MNIST); latent
dimension 20 on MNIST as in Shumailov et al., 8 by default for the 8x8 digits.

``sample`` draws z ~ N(0, I), scales it by ``bias`` (bias scales the std: a truncation, as for
the GANs; bias = 1 is the model as trained) and returns the decoder's mean image (the Bernoulli
probabilities mapped back to [-1, 1]), not a binary draw. The model is unconditional: label 0.

On the 8x8 digits the defaults take about 16 ms a step on one CPU thread; 4,000 steps (a minute)
give legible, blurred digits: FID 4.6 at n = 500 (floor 0.6), precision 0.93, recall 0.42.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_bias, check_image_shape, check_int, check_items, check_positive
from ._training import device_default, seeded
from .protocol import Recorded


class Encoder(nn.Module):
    """image -> (mu, log sigma^2) of q(z | x)."""

    def __init__(self, shape, latent: int, width: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        c, h, w = shape
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * width * (h // 4) * (w // 4), hidden),
            nn.ReLU(),
            *([nn.Dropout(dropout)] if dropout else []),
            nn.Linear(hidden, 2 * latent),
        )

    def forward(self, x):
        return self.body(x).chunk(2, dim=1)


class Decoder(nn.Module):
    """z -> pixel logits (Bernoulli probabilities after a sigmoid)."""

    def __init__(self, shape, latent: int, width: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        c, h, w = shape
        self.start = (2 * width, h // 4, w // 4)
        self.body = nn.Sequential(
            nn.Linear(latent, hidden),
            nn.ReLU(),
            *([nn.Dropout(dropout)] if dropout else []),
            nn.Linear(hidden, 2 * width * (h // 4) * (w // 4)),
            nn.ReLU(),
            nn.Unflatten(1, self.start),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, 2, 1),
        )

    def forward(self, z):
        return self.body(z)


class VAE(Recorded):
    """The model protocol of ``mcollapse.models`` for a VAE; see the module docstring.

    ``fit`` runs ``steps`` Adam steps on the negative ELBO (mini-batches with replacement) from
    the current weights, so a loaded model fine-tunes; the engine's fresh models start afresh.

    Two regularisers, off by default (so runs made without them keep their settings and hashes):
    ``weight_decay`` (decoupled, AdamW) and ``dropout`` (before the last dense layer of the encoder
    and after the first of the decoder; active while training only).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 8, 8),
        *,
        latent: int = 8,
        width: int = 32,
        hidden: int = 256,
        steps: int = 4000,
        batch_size: int = 64,
        lr: float = 1e-3,
        sample_batch: int = 1000,
        init_seed: int = 0,
        weight_decay: float = 0.0,
        dropout: float = 0.0,
        device=None,
        progress: bool = True,
    ):
        self.image_shape = check_image_shape("image_shape", image_shape, divisible_by=4)
        self.latent = check_int("latent", latent, minimum=1)
        width = check_int("width", width, minimum=1)
        hidden = check_int("hidden", hidden, minimum=1)
        self.steps = check_int("steps", steps, minimum=1)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.lr = check_positive("lr", lr)
        self.sample_batch = check_int("sample_batch", sample_batch, minimum=1)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if not (isinstance(dropout, int | float) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.device = torch.device(device) if device is not None else device_default()
        self.progress = progress
        with seeded(check_int("init_seed", init_seed, minimum=0)):
            self.encoder = Encoder(self.image_shape, self.latent, width, hidden, self.dropout)
            self.decoder = Decoder(self.image_shape, self.latent, width, hidden, self.dropout)
        self.encoder.to(self.device)
        self.decoder.to(self.device)
        self.losses: list[float] = []  # the negative ELBO per training step, nats per image

    def settings(self) -> dict:
        """As recorded, without the regularisers when they are off: runs made before they existed
        keep their hashes."""
        out = super().settings()
        for name in ("weight_decay", "dropout"):
            if out.get(name) == 0:
                del out[name]
        return out

    def _parameters(self):
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    # -- the bound ----------------------------------------------------------------------------
    def _elbo(self, x, eps) -> dict:
        """Per item: the reconstruction log-likelihood -BCE at z = mu + sigma eps, the KL of
        q(z | x) from N(0, I) in closed form, and their difference, the ELBO (nats)."""
        mu, logvar = self.encoder(x)
        z = mu + (0.5 * logvar).exp() * eps
        target = ((x + 1) / 2).clamp(0, 1)
        bce = F.binary_cross_entropy_with_logits(self.decoder(z), target, reduction="none")
        recon = -bce.flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return {"elbo": recon - kl, "reconstruction": recon, "kl": kl}

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """{"elbo", "reconstruction", "kl"}: per-item tensors (N,) in nats, one z per item drawn
        from ``generator`` (seed 0 by default, so two calls on the same data agree)."""
        x = check_items("x", x, self.image_shape)
        generator = generator or torch.Generator().manual_seed(0)
        self.encoder.eval()
        self.decoder.eval()
        parts = []
        for c in x.split(self.sample_batch):
            eps = torch.randn(len(c), self.latent, generator=generator)
            parts.append({k: v.cpu() for k, v in self._elbo(c.to(self.device), eps.to(self.device)).items()})  # fmt: skip
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent means mu(x) (N, latent), on the CPU."""
        x = check_items("x", x, self.image_shape)
        self.encoder.eval()
        return torch.cat([self.encoder(c.to(self.device))[0].cpu()
                          for c in x.split(self.sample_batch)])  # fmt: skip

    # -- training -----------------------------------------------------------------------------
    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """``steps`` Adam steps on -ELBO (labels unused)."""
        x = check_items("x", x, self.image_shape)
        if self.weight_decay:  # decoupled weight decay (AdamW); plain Adam as before when off
            opt = torch.optim.AdamW(self._parameters(), lr=self.lr, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.Adam(self._parameters(), lr=self.lr)
        self.encoder.train()
        self.decoder.train()
        self.losses = []
        bar = tqdm(range(self.steps), desc="VAE training", leave=False, mininterval=2.0,
                   disable=not self.progress)  # fmt: skip
        # dropout masks come from torch's global RNG: seed it from the generator, restore it after
        masks = (
            seeded(int(torch.randint(0, 2**62, (1,), generator=generator)))
            if self.dropout
            else nullcontext()
        )
        with masks:
            self._steps(x, opt, bar, generator)
        self.encoder.eval()
        self.decoder.eval()

    def _steps(self, x, opt, bar, generator):
        n, b, d = len(x), self.batch_size, self.device
        for step in bar:
            batch = x[torch.randint(n, (b,), generator=generator)].to(d)
            eps = torch.randn(b, self.latent, generator=generator).to(d)
            loss = -self._elbo(batch, eps)["elbo"].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.losses.append(loss.item())
            if step % 100 == 0:
                bar.set_postfix(loss=f"{sum(self.losses[-100:]) / len(self.losses[-100:]):.2f}")

    # -- the protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, bias: float, generator: torch.Generator):
        """n decoder mean images from z = bias * N(0, I); labels all 0 (unconditional)."""
        n = check_int("n", n, minimum=1)
        bias = check_bias("bias", bias)
        z = bias * torch.randn(n, self.latent, generator=generator)
        self.decoder.eval()
        x = torch.cat([torch.sigmoid(self.decoder(c.to(self.device))).cpu()
                       for c in z.split(self.sample_batch)])  # fmt: skip
        return 2 * x - 1, torch.zeros(n, dtype=torch.int64)

    def state_dict(self) -> dict:
        """Encoder and decoder: plain tensors (``torch.load(weights_only=True)`` works)."""
        return {k: {n: v.detach().cpu().clone() for n, v in m.state_dict().items()}
                for k, m in (("encoder", self.encoder), ("decoder", self.decoder))}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or set(state) != {"encoder", "decoder"}:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be a dict with keys decoder, encoder; got {keys}")
        self.encoder.load_state_dict(state["encoder"])
        self.decoder.load_state_dict(state["decoder"])
