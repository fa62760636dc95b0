"""Image quality per CPU-second: our DDPM and rectified flow against peer libraries.

Every contender trains on the 1,297 training digits (8x8, [-1, 1]) with one thread, batch 64 and
Adam at lr 2e-3, with an EMA of decay 0.995 for sampling; at each training-time budget the clock
stops, 500 samples are drawn and scored (FID, precision, recall at k = 5) against the 500
held-out digits by the project's evaluator, and training goes on. Sampling uses equal network
evaluations per family: 25 DDIM steps for the DDPMs, 16 evaluations for the flows (8 Heun or
midpoint steps). Peers, pinned in the ``peers`` extra (``make bench-peers`` installs them):

- denoising-diffusion-pytorch 2.3.4: its classifier-free-guidance U-Net and GaussianDiffusion
  (T = 500, cosine, deterministic DDIM as ours: its default eta = 1 adds noise at every one of the
  25 steps; its defaults otherwise).
- rectified-flow-pytorch 0.14.0: its U-Net and RectifiedFlow (its defaults).
- torchcfm 1.0.7: its U-Net (``UNetModelWrapper``) with ``ConditionalFlowMatcher(sigma=0)``.

Prints one table and writes ``build/bench/peers.csv``. Asserts nothing.
Usage: ``python benchmarks/bench_peers.py [--budgets 30 60 120 240] [--only NAME ...] [--jobs 2]
[--ours KEY=JSON ...] [--peer-lr LR]`` (variants: our models' settings, e.g. ``--ours width=48``;
the peers' learning rate).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import multiprocessing
import time

import torch

from mcollapse import data, metrics, paths
from mcollapse.models._training import update_ema

BATCH, LR, EMA_DECAY, N_EVAL = 64, 2e-3, 0.995, 500
DDIM_STEPS, FLOW_STEPS = 25, 8  # DDIM steps; Heun or midpoint steps (2 evaluations each)
WIDTH, MULTS = 32, (1, 2)
DEFECTS = [
    "denoising-diffusion-pytorch 2.3.4: its guidance sampler crashes at cond_scale = 1 (one output"
    " unpacked into two); the benchmark samples with one conditional pass, which is what 1 means",
]


# -- contenders: each gives step() (one training step) and sample(n) -> images in [-1, 1] ------
class Ours:
    """An mcollapse model trained by its own fit(); the benchmark's clock rides on on_step."""

    def __init__(self, model, x, y):
        self.model, self.x, self.y = model, x, y
        self.net = model.net

    def train(self, on_step, seed):
        self.model.steps = 10**9
        self.model.fit(self.x, self.y, torch.Generator().manual_seed(seed), on_step=on_step)

    def sample(self, n, seed):
        return self.model.sample(n, 1.0, torch.Generator().manual_seed(seed))[0]


class Peer:
    """A peer model in our training loop: Adam, batch 64 with replacement, and our EMA (decay
    0.995 per step after a short warm-up). The EMA of the peers' trainers (ema-pytorch, updated
    every 10 steps from step 100, its decay warming up over thousands of steps) still averages in
    the first few hundred steps at these budgets, which would measure the EMA, not the model."""

    def __init__(self, net, loss, sample, x, y):
        self.net, self.loss_fn, self.sample_fn, self.x, self.y = net, loss, sample, x, y
        self.lr = LR
        self.ema = copy.deepcopy(net).requires_grad_(False)

    def train(self, on_step, seed):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        step = 0
        while True:
            idx = torch.randint(len(self.x), (BATCH,), generator=g)
            loss = self.loss_fn(self.net, self.x[idx], self.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            update_ema(self.ema, self.net, EMA_DECAY, step)
            step += 1
            if on_step(step):
                return

    @torch.no_grad()
    def sample(self, n, seed):
        torch.manual_seed(seed)
        self.ema.eval()
        out = self.sample_fn(self.ema, n)
        return out.clamp(-1, 1)


def ours_ddpm(x, y, **changes):
    from mcollapse.models.ddpm import DDPM

    settings = dict(width=WIDTH, mults=MULTS, blocks=1, timesteps=500, schedule="cosine",
                    batch_size=BATCH, lr=LR, warmup=100, ema_decay=EMA_DECAY, sampler="ddim",
                    sample_steps=DDIM_STEPS)  # fmt: skip
    return Ours(DDPM((1, 8, 8), 10, **{**settings, **changes}, progress=False), x, y)


def ours_flow(x, y, **changes):
    from mcollapse.models.rectified_flow import RectifiedFlow

    settings = dict(net="unet", width=WIDTH, mults=MULTS, blocks=1, batch_size=BATCH, lr=LR,
                    ema_decay=EMA_DECAY, sampler="heun", sample_steps=FLOW_STEPS)  # fmt: skip
    return Ours(RectifiedFlow((1, 8, 8), **{**settings, **changes}, progress=False), x, y)


def peer_ddpm(x, y):
    from denoising_diffusion_pytorch.classifier_free_guidance import GaussianDiffusion, Unet

    unet = Unet(dim=WIDTH, num_classes=10, dim_mults=MULTS, channels=1)
    diffusion = GaussianDiffusion(unet, image_size=8, timesteps=500, sampling_timesteps=DDIM_STEPS,
                                  beta_schedule="cosine", ddim_sampling_eta=0.0)  # fmt: skip

    def loss(net, xb, yb):
        return net((xb + 1) / 2, classes=yb)  # it maps [0, 1] to [-1, 1] itself

    def sample(net, n):
        inner = net.model  # the EMA copy's U-Net

        def one_pass(*args, cond_scale=1.0, rescaled_phi=0.0, **kwargs):
            out = inner.forward(*args, cond_drop_prob=0.0, **kwargs)
            return out, out  # what its sampler unpacks; at cond_scale 1 it gets one tensor

        inner.forward_with_cond_scale = one_pass
        return net.sample(torch.randint(10, (n,)), cond_scale=1.0) * 2 - 1

    return Peer(diffusion, loss, sample, x, y)


def peer_rectified_flow(x, y):
    from rectified_flow_pytorch import RectifiedFlow, Unet

    flow = RectifiedFlow(Unet(dim=WIDTH, dim_mults=MULTS, channels=1), data_shape=(1, 8, 8))

    def loss(net, xb, yb):
        return net((xb + 1) / 2)  # [0, 1] in, as its trainer feeds it

    def sample(net, n):  # odeint over FLOW_STEPS + 1 times: FLOW_STEPS midpoint steps
        return net.sample(batch_size=n, steps=FLOW_STEPS + 1, data_shape=(1, 8, 8)) * 2 - 1

    return Peer(flow, loss, sample, x, y)


def peer_torchcfm(x, y):
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
    from torchcfm.models.unet.unet import UNetModelWrapper
    from torchdiffeq import odeint

    net = UNetModelWrapper(dim=(1, 8, 8), num_channels=WIDTH, num_res_blocks=1,
                           channel_mult=MULTS, attention_resolutions="4")  # fmt: skip
    matcher = ConditionalFlowMatcher(sigma=0.0)

    def loss(model, xb, yb):
        t, xt, ut = matcher.sample_location_and_conditional_flow(torch.randn_like(xb), xb)
        return torch.mean((model(t, xt) - ut) ** 2)

    def sample(model, n):
        grid = torch.linspace(0, 1, FLOW_STEPS + 1)
        path = odeint(lambda t, z: model(t.expand(len(z)), z), torch.randn(n, 1, 8, 8), grid,
                      method="midpoint")  # fmt: skip
        return path[-1]

    return Peer(net, loss, sample, x, y)


CONTENDERS = {
    "mcollapse DDPM": ("ddpm", ours_ddpm),
    "denoising-diffusion-pytorch": ("ddpm", peer_ddpm),
    "mcollapse rectified flow": ("flow", ours_flow),
    "rectified-flow-pytorch": ("flow", peer_rectified_flow),
    "torchcfm": ("flow", peer_torchcfm),
}


def measure(name: str, budgets: list[float], changes: dict, peer_lr: float | None = None,
            seed: int = 0) -> list[dict]:  # fmt: skip
    """Train ``name`` with one thread, stopping the clock at each budget to sample and score;
    ``changes`` override our models' settings and ``peer_lr`` the peers' learning rate."""
    torch.set_num_threads(1)
    train = data.load_images("digits", "train")
    ref = metrics.reference("digits")
    torch.manual_seed(seed)
    family, build = CONTENDERS[name]
    ours = name.startswith("mcollapse")
    contender = build(train.x.float(), train.y, **(changes if ours else {}))
    if ours and changes:
        name = f"{name} {changes}"
    if not ours and peer_lr is not None:
        contender.lr, name = peer_lr, f"{name} lr {peer_lr:g}"
    params = sum(p.numel() for p in contender.net.parameters() if p.requires_grad)
    rows, pending = [], list(budgets)
    clock = {"train": 0.0, "since": time.perf_counter()}

    def on_step(step):
        now = time.perf_counter()
        clock["train"] += now - clock["since"]
        if clock["train"] >= pending[0]:
            pending.pop(0)
            start = time.perf_counter()
            samples = contender.sample(N_EVAL, seed + 1)
            sample_s = time.perf_counter() - start
            scores = metrics.image_metrics(samples, ref, metrics=("fid", "prc"))
            rows.append({"model": name, "family": family, "params": params,
                         "budget_s": round(clock["train"], 1), "steps": step,
                         "ms_per_step": round(1000 * clock["train"] / step, 1),
                         "sample_s": round(sample_s, 2), "fid": round(scores["fid"], 3),
                         "precision": round(scores["precision"], 3),
                         "recall": round(scores["recall"], 3)})  # fmt: skip
            print(f"  {name}: {rows[-1]}", flush=True)
        clock["since"] = time.perf_counter()
        return not pending

    contender.train(on_step, seed)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 120, 240],
                        help="training seconds at which each model is scored")  # fmt: skip
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--jobs", type=int, default=1, help="contenders at once (one thread each)")
    parser.add_argument("--ours", nargs="+", default=[], metavar="KEY=JSON",
                        help="override our models' settings, e.g. width=48 attention=false")  # fmt: skip
    parser.add_argument("--peer-lr", type=float, default=None,
                        help=f"the peers' Adam learning rate (default {LR:g}, as ours)")  # fmt: skip
    args = parser.parse_args()
    try:
        changes = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.ours)}
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    except ValueError as error:
        parser.error(f"--ours takes KEY=JSON items (e.g. width=48), got {args.ours}: {error}")
    budgets = sorted(args.budgets)
    if not budgets or budgets[0] <= 0:
        parser.error(f"--budgets must be positive seconds, got {args.budgets}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    ref = metrics.reference("digits")
    floor = metrics.real_floor(ref, N_EVAL, metrics=("fid", "prc"))
    print(f"real-vs-real floor at n = {N_EVAL}: FID {floor['fid']:.2f}, precision"
          f" {floor['precision']:.3f}, recall {floor['recall']:.3f}")  # fmt: skip
    jobs = [(name, budgets, changes, args.peer_lr) for name in args.only]
    if args.jobs == 1:
        results = [measure(*job) for job in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.starmap(measure, jobs)
    rows = [row for rs in results for row in rs]
    print(f"\n{'model':30s} {'params':>8s} {'train s':>8s} {'steps':>6s} {'ms/step':>8s}"
          f" {'sample s':>9s} {'FID':>6s} {'prec':>6s} {'recall':>6s}")  # fmt: skip
    for r in rows:
        print(f"{r['model']:30s} {r['params']:8,d} {r['budget_s']:8.0f} {r['steps']:6d}"
              f" {r['ms_per_step']:8.1f} {r['sample_s']:9.2f} {r['fid']:6.2f}"
              f" {r['precision']:6.3f} {r['recall']:6.3f}")  # fmt: skip
    for family in ("ddpm", "flow"):
        for i, b in enumerate(budgets):
            at = [rs[i] for rs in results if len(rs) > i and rs[0]["family"] == family]
            if len(at) > 1:
                best = min(at, key=lambda r: r["fid"])
                print(f"{family} at {b:g} s: lowest FID {best['fid']:.2f} ({best['model']})")
    for defect in DEFECTS:
        print("peer defect:", defect)
    out = paths.BUILD / "bench" / "peers.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
