"""Repeated reflow and the collapse-avoiding reflows of Zhu et al. (arXiv 2412.08175).

Round 0 is 1-rectified flow trained on the real data (independent noise-data pairing). Round k >= 1
trains a flow for ``train_steps`` (fine-tuned from round k - 1, or from scratch with
``init="scratch"``) on pairs (z, x) that the round k - 1 flow (the "teacher") makes, one scheme per run:

- ``reflow``: synthetic pairs only, (z, Phi_k(z)) from the teacher's forward ODE (Liu et al.).
  Trained on nothing but its own outputs, the flow collapses over rounds (Zhu et al.).
- ``rca`` (real-data-augmented reflow; "RA" in their v2): real pairs (Phi_k^{-1}(x), x) from running
  the flow backwards on the real data, mixed into every mini-batch at ``real_ratio`` with the
  synthetic pairs; the real pairs are re-inverted with the network in training every ``refresh``
  steps (0: once per round, with the teacher).
- ``ocar`` (online reflow; "ORA"): both kinds of pairs made afresh for every mini-batch (fresh noise
  carried forward, fresh real draws inverted) by the teacher, so no fixed pair set is memorised.
  Making them with the network in training instead fed its own errors back at every step and
  diverged in our 2-D runs (W2 0.2 -> 10 in five rounds), so the teacher is frozen per round.

Why a sibling of ``mcollapse.loops`` and not the engine itself: a round trains on pairs made by the
previous model's ODE (and on inversions of real data), not on a composed set of (x, y) items, and
round 0 is shared by all schemes. The conventions are the engine's: a frozen spec validated on
construction, ``run_dir/<hash of spec + key>/round_NN/`` with atomic writes and a manifest (sha256 of
every file) written last, verified resume, ``LoopWarning`` and recomputation of anything damaged
(and of every later round), tidy records.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__, seeds, store
from ._checks import check_choice, check_int
from .loops import LoopWarning

SCHEMES = ("reflow", "rca", "ocar")
INITS = ("finetune", "scratch")
STAGES = ("real", "pairs", "train", "sample")
FILES = ("model.pt", "samples.pt", "metrics.json")


@dataclass(frozen=True)
class ReflowSpec:
    """One reflow run; validated on construction. See the module docstring for the schemes.

    ``n_real``: real items (round 0's training set, and the items RCA / OCAR invert);
    ``n_pairs``: synthetic pairs made per round (reflow, RCA); ``pair_steps``: Euler steps of
    every pair-making ODE (forward and backward); ``stochastic``: noisy, jittered inversion.
    """

    scheme: str
    rounds: int
    n_real: int
    n_pairs: int = 0
    train_steps: int = 1000
    real_ratio: float = 0.0
    refresh: int = 0
    pair_steps: int = 50
    stochastic: bool = False
    init: str = "finetune"
    seed: int = 0
    n_eval: int = 500

    def __post_init__(self):
        check_choice("scheme", self.scheme, SCHEMES)
        check_choice("init", self.init, INITS)
        for name, low in [("rounds", 0), ("n_real", 1), ("n_pairs", 0), ("train_steps", 1),
                          ("refresh", 0), ("pair_steps", 1), ("seed", 0), ("n_eval", 1)]:  # fmt: skip
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))
        r = self.real_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= r <= 1.0:
            raise ValueError(f"real_ratio must be a number in [0, 1], got {r!r}")
        object.__setattr__(self, "real_ratio", float(r))
        if not isinstance(self.stochastic, bool):
            raise ValueError(f"stochastic must be True or False, got {self.stochastic!r}")
        if self.scheme == "reflow" and (self.real_ratio != 0 or self.refresh != 0):
            raise ValueError(
                f"real_ratio and refresh must be 0 for scheme='reflow' (no real pairs), got"
                f" {self.real_ratio} and {self.refresh}"
            )
        if self.scheme != "reflow" and not 0 < self.real_ratio < 1:
            raise ValueError(
                f"real_ratio must be in (0, 1) for scheme={self.scheme!r}, got {self.real_ratio}"
            )
        if self.scheme == "ocar" and (self.n_pairs != 0 or self.refresh != 0):
            raise ValueError(
                f"n_pairs and refresh must be 0 for scheme='ocar' (pairs are made online), got"
                f" {self.n_pairs} and {self.refresh}"
            )
        if self.scheme != "ocar" and self.rounds > 0 and self.n_pairs < 1:
            raise ValueError(f"n_pairs must be >= 1 for scheme={self.scheme!r}, got {self.n_pairs}")

    def first_identity(self) -> dict:
        """What round 0 (1-RF on the real data) depends on: shared by every scheme."""
        return {"seed": self.seed, "n_real": self.n_real, "n_eval": self.n_eval}

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "rounds"}

    def hash(self, key=None) -> str:
        return store.digest({"spec": self.identity(), "key": store.json_key(key)})[:12]


@dataclass
class RoundResult:
    round: int
    counts: dict  # items seen in training: {"real": n, "synthetic": n}
    samples: torch.Tensor
    metrics: dict[str, float]
    seconds: dict[str, float]
    resumed: bool


@dataclass
class ReflowResult:
    spec: ReflowSpec
    run_dir: Path
    rounds: list[RoundResult]
    dirs: list[Path]
    make_model: object = None

    def records(self) -> list[dict]:
        """Tidy rows, one per round and metric (``generation`` = round, for the plotting helpers)."""
        s = self.spec
        return [
            {"round": r.round, "generation": r.round, "metric": name, "value": value,
             "scheme": s.scheme, "real_ratio": s.real_ratio, "seed": s.seed,
             "n_train_real": r.counts["real"], "n_train_synthetic": r.counts["synthetic"],
             "seconds": sum(r.seconds.values())}
            for r in self.rounds for name, value in r.metrics.items()
        ]  # fmt: skip

    def model(self, k: int = -1):
        """A fresh model holding round k's flow (default: the last)."""
        model = self.make_model()
        model.load_state_dict(store.load(self.dirs[k] / "model.pt"))
        return model


def compose_batch(n: int, real_ratio: float) -> tuple[int, int]:
    """(real, synthetic) items of a mini-batch of n: round(real_ratio n) real, at least one of each
    kind when 0 < real_ratio < 1 and n >= 2."""
    n = check_int("n", n, minimum=1)
    k = int(round(real_ratio * n))
    if 0 < real_ratio < 1 and n >= 2:
        k = min(max(k, 1), n - 1)
    return k, n - k


class PairBatches:
    """``batch(generator) -> (x0, x1)`` for one round of one scheme; counts what it hands out."""

    def __init__(
        self, spec: ReflowSpec, teacher, student, real: torch.Tensor, synthetic, generator
    ):
        self.spec, self.teacher, self.student, self.real = spec, teacher, student, real
        self.n_real, self.n_synthetic = compose_batch(student.batch_size, spec.real_ratio)
        self.counts = {"real": 0, "synthetic": 0}
        self.synthetic = synthetic  # (z, x) made before the round, or None (OCAR)
        self.inverted = None
        self.calls = 0
        if spec.scheme == "rca":
            self._invert_all(generator)

    def _invert(self, model, x, generator):
        s = self.spec
        return model.invert(x, s.pair_steps, "euler", s.stochastic, generator)

    def _invert_all(self, generator, model=None):
        self.inverted = self._invert(model or self.teacher, self.real, generator)

    def __call__(self, generator):
        s, teacher = self.spec, self.teacher
        if s.scheme == "rca" and s.refresh and self.calls and self.calls % s.refresh == 0:
            self._invert_all(generator, self.student)
        self.calls += 1
        parts = []
        if self.n_real:
            idx = torch.randint(len(self.real), (self.n_real,), generator=generator)
            x1 = self.real[idx]
            x0 = self._invert(teacher, x1, generator) if s.scheme == "ocar" else self.inverted[idx]
            parts.append((x0, x1))
        if self.n_synthetic:
            if s.scheme == "ocar":
                z = torch.randn((self.n_synthetic, *teacher.shape), generator=generator)
                parts.append((z, teacher.generate(z, s.pair_steps, "euler")))
            else:
                z, x = self.synthetic
                idx = torch.randint(len(z), (self.n_synthetic,), generator=generator)
                parts.append((z[idx], x[idx]))
        self.counts["real"] += self.n_real
        self.counts["synthetic"] += self.n_synthetic
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def run_reflow(
    spec, make_model, source, evaluate, run_dir, key=None, progress=True
) -> ReflowResult:
    """Run (or resume) ``spec``: round 0 (1-RF, shared by all schemes in ``run_dir``), then rounds.

    ``make_model()`` -> a fresh ``RectifiedFlow``; ``source.sample(n, generator)`` -> real (x, y);
    ``evaluate(x, model, k)`` -> {metric: value} for round k's ``n_eval`` samples (drawn with the
    model's own sampler from a noise stream fixed per round).
    """
    if not isinstance(spec, ReflowSpec):
        raise ValueError(f"spec must be a ReflowSpec, got {type(spec).__name__}")
    spec = ReflowSpec(**asdict(spec))
    for name, fn in [("make_model", make_model), ("evaluate", evaluate)]:
        if not callable(fn):
            raise ValueError(f"{name} must be callable, got {fn!r}")
    if not callable(getattr(source, "sample", None)):
        raise ValueError(f"source must have a sample(n, generator) method, got {source!r}")
    key, h = store.json_key(key), spec.hash(key)
    first = (
        Path(run_dir) / "first" / store.digest({"first": spec.first_identity(), "key": key})[:12]
    )
    root = Path(run_dir) / h
    root.mkdir(parents=True, exist_ok=True)

    def sd(k):
        return {s: int(seeds.seed_sequence(spec.seed, s, k).generate_state(1, np.uint64)[0])
                for s in STAGES}  # fmt: skip

    real_x = []

    def real():
        if not real_x:
            x, _ = source.sample(spec.n_real, generator=_gen(sd(0)["real"]))
            real_x.append(x.detach().cpu().float())
        return real_x[0]

    results, dirs, recomputed, previous = [], [], False, None
    bar = tqdm(
        range(spec.rounds + 1), desc=f"{spec.scheme} {h}", unit="round", disable=not progress
    )
    for k in bar:
        rdir = first / "round_00" if k == 0 else root / f"round_{k:02d}"
        ident = {"first": spec.first_identity()} if k == 0 else {"spec": spec.identity()}
        record = {**ident, "key": key, "round": k}
        dirs.append(rdir)
        problem = f"{rdir}: an earlier round was recomputed" if recomputed else None
        if not recomputed and rdir.exists():
            loaded, problem = _load_round(rdir, record, k)
            if loaded is not None:
                results.append(loaded)
                previous = None
                continue
        if rdir.exists():
            warnings.warn(f"{problem}; recomputing round {k}", LoopWarning, stacklevel=2)
            shutil.rmtree(rdir)
        recomputed = True
        rdir.mkdir(parents=True)
        seconds, clock = {}, time.perf_counter()
        model = make_model()
        seeds_k = sd(k)
        if k == 0:
            x = real()
            model.fit(x, torch.zeros(len(x), dtype=torch.int64), generator=_gen(seeds_k["train"]))
            counts = {"real": model.steps * model.batch_size, "synthetic": 0}
        else:
            teacher = make_model()
            teacher.load_state_dict(previous or store.load(dirs[k - 1] / "model.pt"))
            if spec.init == "finetune":
                model.load_state_dict(teacher.state_dict())
            pairs = None
            if spec.scheme != "ocar":
                pairs = teacher.generate_pairs(spec.n_pairs, _gen(seeds_k["pairs"]),
                                               spec.pair_steps, "euler")  # fmt: skip
            seconds["pairs"] = time.perf_counter() - clock
            batches = PairBatches(spec, teacher, model, real(), pairs, _gen(seeds_k["pairs"]))
            model.train_batches(batches, spec.train_steps, _gen(seeds_k["train"]),
                                desc=f"{spec.scheme} round {k}")  # fmt: skip
            counts = batches.counts
        seconds["train"] = time.perf_counter() - clock - sum(seconds.values())
        state = model.state_dict()
        store.save(rdir / "model.pt", state)
        samples, _ = model.sample(spec.n_eval, 1.0, _gen(seeds_k["sample"]))
        store.save(rdir / "samples.pt", {"x": samples})
        seconds["sample"] = time.perf_counter() - clock - sum(seconds.values())
        metrics = {k2: float(v) for k2, v in sorted(evaluate(samples, model, k).items())}
        store.save_json(rdir / "metrics.json", metrics)
        seconds["evaluate"] = time.perf_counter() - clock - sum(seconds.values())
        manifest = {**record, "spec_hash": h if k else None, "counts": counts, "seeds": seeds_k,
                    "seconds": seconds, "versions": _versions(),
                    "files": {n: store.sha256(rdir / n) for n in FILES}}  # fmt: skip
        store.save_json(
            rdir / "manifest.json", {**manifest, "manifest_sha256": store.digest(manifest)}
        )
        results.append(RoundResult(k, counts, samples, metrics, seconds, False))
        previous = state
    bar.close()
    return ReflowResult(spec, root, results, dirs, make_model)


def run_reflows(specs, make_model, source, evaluate, run_dir, key=None, progress=True):
    """Several named runs in one ``run_dir`` (sharing round 0). Returns {name: ReflowResult}."""
    if not isinstance(specs, dict) or not specs:
        raise ValueError(f"specs must be a non-empty dict of name to ReflowSpec, got {specs!r}")
    return {n: run_reflow(s, make_model, source, evaluate, run_dir, key, progress)
            for n, s in specs.items()}  # fmt: skip


def tidy(results) -> list[dict]:
    """The records of several named runs in one list, each row with its run's name in ``run``."""
    return [{"run": name, **row} for name, r in results.items() for row in r.records()]


def _load_round(rdir: Path, record: dict, k: int):
    """(the verified round in rdir, None) or (None, "path: what is wrong")."""
    path = rdir / "manifest.json"
    if not path.is_file():
        return None, f"{path}: missing (interrupted run?)"
    try:
        manifest = json.loads(path.read_text())
        recorded = manifest.pop("manifest_sha256")
        if recorded != store.digest(manifest):
            return None, f"{path}: altered (its recorded sha256 does not match)"
        if {n: manifest.get(n) for n in record} != record:
            return None, f"{path}: written for another spec, key or round"
        for name in FILES:
            if not (rdir / name).is_file():
                return None, f"{rdir / name}: missing"
            if store.sha256(rdir / name) != manifest["files"].get(name):
                return None, f"{rdir / name}: does not match its recorded sha256"
        samples = store.load(rdir / "samples.pt")["x"]
        metrics = json.loads((rdir / "metrics.json").read_text())
        return RoundResult(k, manifest["counts"], samples, metrics, manifest["seconds"], True), None
    except Exception as err:  # verified but unloadable files are recomputed, loudly
        return None, f"{rdir}: does not load ({type(err).__name__}: {err})"


def _versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "mcollapse": __version__}  # fmt: skip


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class PointEvaluator:
    """``evaluate`` for 2-D toys: exact W2, precision and recall (k = 5) of the samples against a
    held-out draw, and the straightness of the flow's paths from fixed noise ``z``."""

    def __init__(self, test: torch.Tensor, z: torch.Tensor, straight_steps: int = 16):
        self.test, self.z, self.straight_steps = test, z, straight_steps

    def __call__(self, x, model, k) -> dict[str, float]:
        from . import metrics

        pr = metrics.point_precision_recall(x, self.test)
        return {"w2": metrics.empirical_w2(x, self.test)["w2"], "precision": pr["precision"],
                "recall": pr["recall"],
                "straightness": model.straightness(self.z, self.straight_steps)}  # fmt: skip


class ImageEvaluator:
    """``evaluate`` for images: FID, precision and recall of the first ``n`` samples against the
    held-out reference, and the straightness of the flow's paths from fixed noise ``z``."""

    def __init__(self, ref, n: int, z: torch.Tensor, straight_steps: int = 8):
        self.ref, self.n, self.z, self.straight_steps = ref, n, z, straight_steps

    def __call__(self, x, model, k) -> dict[str, float]:
        from . import metrics

        found = metrics.image_metrics(x[: self.n], self.ref, metrics=("fid", "prc"))
        return {"fid": found["fid"], "precision": found["precision"], "recall": found["recall"],
                "straightness": model.straightness(self.z, self.straight_steps)}  # fmt: skip


def steps_sweep(model, z: torch.Tensor, score, steps=(1, 2, 4, 8, 16)) -> dict[int, float]:
    """{number of Euler steps: score(samples from z)}: few-step quality of one flow."""
    return {int(s): float(score(model.generate(z, int(s), "euler"))) for s in steps}
