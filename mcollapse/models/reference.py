"""The reference model: one Gaussian mixture per class, fitted in closed form or by EM.

It trains in milliseconds, so a loop of fifty generations runs in seconds, and its failure modes are
the textbook ones: every refit adds estimation noise to the means and covariances and a finite
sample under-represents the tails, so what a self-consuming loop does to it is the Gaussian theory
of ``mcollapse.gaussian``. A class missing from the training data gets prior 0 and is never sampled
again: this is how a class vanishes. The sampling bias lambda scales every covariance by lambda, the
covariance-scale bias of MAD (Alemohammad et al., arXiv 2307.01850).
"""

from __future__ import annotations

import math
import numbers

import torch
from sklearn.mixture import GaussianMixture

from .._checks import check_bias, check_int, check_positive
from .protocol import Recorded

STATE_KEYS = ("priors", "weights", "means", "chol", "item_shape")


class ClassGaussianMixture(Recorded):
    """Per class, a mixture of ``components`` full-covariance Gaussians on the flattened items.

    With ``components=1`` a class is fitted by its sample mean and *unbiased* sample covariance
    (divisor n - 1), as in the Gaussian theory; with more components by scikit-learn's EM, whose
    covariances are maximum-likelihood ones. ``reg`` is added to every covariance's diagonal so that
    each stays positive definite. A class with at most ``components`` items cannot support the EM
    fit and gets a single component; one with a single item is a point mass blurred by ``reg``.
    ``clip=(low, high)`` clamps samples, e.g. ``(-1, 1)`` for images.
    """

    finetunes = False  # fit refits from the data alone

    def __init__(self, num_classes: int, components: int = 1, reg: float = 1e-4, clip=None):
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.components = check_int("components", components, minimum=1)
        self.reg = check_positive("reg", reg)
        if clip is not None:
            ok = (
                isinstance(clip, tuple | list)
                and len(clip) == 2
                and all(isinstance(c, numbers.Real) and math.isfinite(c) for c in clip)
                and clip[0] < clip[1]
            )
            if not ok:
                raise ValueError(
                    f"clip must be None or a pair (low, high) with low < high, got {clip!r}"
                )
            clip = (float(clip[0]), float(clip[1]))
        self.clip = clip
        self._state: dict[str, torch.Tensor] | None = None

    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        """Fit every class present in (x, y); EM's random_state is drawn from ``generator``."""
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) < 1:
            raise ValueError(f"x must be a tensor of shape (N, ...) with N >= 1, got {_shape(x)}")
        if not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.dtype != torch.int64:
            raise ValueError(f"y must be an int64 tensor of shape ({len(x)},), got {_shape(y)}")
        if y.min() < 0 or y.max() >= self.num_classes:
            raise ValueError(
                f"y must hold labels in [0, {self.num_classes - 1}], got {y.min().item()}..{y.max().item()}"
            )
        flat = x.detach().cpu().reshape(len(x), -1).double()
        y = y.cpu()
        k, m, d = self.num_classes, self.components, flat.shape[1]
        counts = torch.bincount(y, minlength=k)
        weights = torch.zeros(k, m, dtype=torch.float64)
        means = torch.zeros(k, m, d, dtype=torch.float64)
        chol = torch.zeros(k, m, d, d, dtype=torch.float64)
        eye = torch.eye(d, dtype=torch.float64)
        for c in counts.nonzero().flatten().tolist():
            xc = flat[y == c]
            if m == 1 or len(xc) <= m:
                mu = xc.mean(0)
                centred = xc - mu
                cov = centred.T @ centred / max(len(xc) - 1, 1) + self.reg * eye
                w, mu, cov = torch.ones(1, dtype=torch.float64), mu[None], cov[None]
            else:
                seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
                gm = GaussianMixture(
                    m, covariance_type="full", reg_covar=self.reg, random_state=seed
                )
                gm.fit(xc.numpy())
                w, mu, cov = (
                    torch.from_numpy(a) for a in (gm.weights_, gm.means_, gm.covariances_)
                )
            weights[c, : len(w)] = w
            means[c, : len(w)] = mu
            chol[c, : len(w)] = torch.linalg.cholesky(cov)
        self._state = {
            "priors": counts.double() / len(y),
            "weights": weights,
            "means": means.float(),
            "chol": chol.float(),
            "item_shape": torch.tensor(x.shape[1:], dtype=torch.int64),
        }

    def sample(self, n: int, bias: float, generator: torch.Generator):
        """n items and labels: x = mean + sqrt(bias) L z, all randomness from ``generator``."""
        n = check_int("n", n, minimum=1)
        scale = math.sqrt(check_bias("bias", bias))
        s = self._fitted()
        labels = torch.multinomial(s["priors"], n, replacement=True, generator=generator)
        comp = torch.multinomial(s["weights"][labels], 1, replacement=True, generator=generator)[
            :, 0
        ]
        z = torch.randn(n, s["means"].shape[-1], generator=generator)
        x = torch.empty_like(z)
        for c, j in torch.unique(torch.stack([labels, comp], 1), dim=0).tolist():
            rows = (labels == c) & (comp == j)
            x[rows] = s["means"][c, j] + scale * z[rows] @ s["chol"][c, j].T
        x = x.reshape(n, *s["item_shape"].tolist())
        return (x.clamp(*self.clip) if self.clip else x), labels

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors only, so ``torch.load(weights_only=True)`` reads it back."""
        return {k: v.clone() for k, v in self._fitted().items()}

    def load_state_dict(self, state) -> None:
        if not isinstance(state, dict) or set(state) != set(STATE_KEYS):
            raise ValueError(f"state must be a dict with keys {STATE_KEYS}, got {_keys(state)}")
        state = {k: torch.as_tensor(state[k]).detach().cpu().clone() for k in STATE_KEYS}
        want = (self.num_classes, self.components)
        if tuple(state["weights"].shape) != want or state["priors"].shape != (self.num_classes,):
            raise ValueError(
                f"state must be for num_classes={want[0]}, components={want[1]}; got weights of shape"
                f" {tuple(state['weights'].shape)}"
            )
        self._state = state

    def _fitted(self) -> dict[str, torch.Tensor]:
        if self._state is None:
            raise RuntimeError(
                "ClassGaussianMixture is not fitted: call fit() or load_state_dict()"
            )
        return self._state


def _shape(t) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}" if isinstance(t, torch.Tensor) else repr(t)


def _keys(state) -> str:
    return repr(sorted(state)) if isinstance(state, dict) else repr(type(state).__name__)
