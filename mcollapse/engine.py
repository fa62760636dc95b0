"""The run engine: one home for specs, seeds, persistence, resume, locks and sweeps.

A run is a frozen, validated spec (a ``RunSpec`` subclass) and a seed. Its generations are numbered
the same way everywhere: **generation 1 is the model trained on real data only**; generation t > 1
trains on what the spec's step composes from earlier generations (``loops.LoopSpec``: composed
items; ``reflow.ReflowSpec``: noise-image pairs of the previous flow). The engine does the rest once
for every step: per-stage seed streams, ``run_dir/<hash>/gen_NN/`` with a checksummed manifest
written last, verified resume (anything missing, truncated, altered or written for another spec is
recomputed with a ``RunWarning``, never used), the generation-1 model (and its samples and scores)
shared by every run that trains it on the same real data, a per-run lock so two writers never
corrupt a run or do it twice, a fixed thread count so the numbers do not depend on the machine's
load, and tidy records.

``sweep`` runs specs x seeds in parallel: local processes (joblib, one torch / BLAS thread each) or
a Dask cluster; the records are the same whatever the backend and the number of workers.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from filelock import FileLock
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import __version__, seeds, store
from ._checks import check_bias, check_choice, check_int

INITS = ("scratch", "finetune")
FILES = ("model.pt", "model.json", "samples.pt", "metrics.json")
SCHEDULER_ENV = "MCOLLAPSE_SCHEDULER"


class RunWarning(UserWarning):
    """Something on disk could not be used and is being recomputed."""


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What every run has; a subclass adds its step's fields and ``train``. Validated on
    construction: a bad value raises ``ValueError`` naming the field before any work starts.

    ``bias`` is MAD's sampling bias lambda in (0, 1] (what it means is the model's business);
    ``n_eval`` items are sampled from every generation for evaluation (at least the synthetic
    items the next generation needs); ``init`` says whether generation t > 1 starts from
    generation t - 1's weights (``finetune``) or from a fresh model (``scratch``).
    """

    generations: int
    seed: int = 0
    bias: float = 1.0
    init: str = "scratch"
    n_eval: int = 0

    STAGES: ClassVar[tuple[str, ...]] = ("real", "train", "sample")

    def __post_init__(self):
        for name, low in (("generations", 1), ("seed", 0), ("n_eval", 0)):
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))
        object.__setattr__(self, "bias", check_bias("bias", self.bias))
        check_choice("init", self.init, INITS)
        self.validate()

    def validate(self) -> None:
        """Checks of the step's own fields (subclasses)."""

    # -- what the engine asks of a step ---------------------------------------------------------
    @property
    def n_first(self) -> int:
        """Real items generation 1 trains on."""
        raise NotImplementedError

    @property
    def n_first_draw(self) -> int:
        """Size of the one real draw of generation 1 (its first ``n_first`` items train it)."""
        return self.n_first

    @property
    def n_draw(self) -> int:
        """Items sampled from every generation (evaluated, and fed to the next by some steps)."""
        return self.n_eval

    def cost(self) -> float:
        """Rough relative work of the run, so a sweep can start the longest runs first (two
        workers left with one long run idle one core); only the order of costs matters."""
        return float(self.generations)

    def train(self, t: int, model, ctx: Context) -> dict:
        """Train ``model`` (fresh, or holding generation t - 1 with ``init="finetune"``) for
        generation t >= 2; return the counts of what it trained on, by origin:
        ``{"real": n, "synthetic": n}`` and, for composed sets, ``"by_provenance"``."""
        raise NotImplementedError

    # -- identity -----------------------------------------------------------------------------
    def identity(self) -> dict:
        """What decides each generation's numbers: every field but ``generations`` (generation t
        does not depend on how many follow it, so a longer run reuses a shorter one's work)."""
        fields = {k: v for k, v in asdict(self).items() if k != "generations"}
        return {"step": type(self).__name__, **fields}

    def first_identity(self) -> dict:
        """What generation 1's model depends on: the same for every step, bias and pool."""
        return {"seed": self.seed, "n_first": self.n_first, "draw": self.n_first_draw}

    def hash(self, key=None) -> str:
        """12 hex digits of sha256 over the identity and a JSON-able ``key``."""
        return store.digest({"spec": self.identity(), "key": store.json_key(key)})[:12]


@dataclass
class Generation:
    """One generation of one run, as computed or as verified and loaded from disk."""

    generation: int
    counts: dict
    provenance: torch.Tensor | None  # int16 per training item (0 = real, s = made by generation s)
    samples: tuple[torch.Tensor, torch.Tensor]
    metrics: dict[str, float]
    seeds: dict[str, int]
    seconds: dict[str, float]
    resumed: bool


@dataclass
class Run:
    """A finished run: its spec, folder and generations; ``model(t)`` rebuilds generation t."""

    name: str
    spec: RunSpec
    root: Path
    generations: list[Generation]
    make_model: object = field(repr=False, default=None)

    def model(self, t: int = -1):
        """A fresh model holding generation t's weights (1-based; -1 is the last)."""
        n = len(self.generations)
        t = n if t == -1 else check_int("t", t, minimum=1, maximum=n)
        return load_model(self.make_model, self.root, t)

    def records(self) -> list[dict]:
        """Tidy rows, one per generation and metric: ``run, seed, generation, metric, value`` and
        the spec's fields and training counts."""
        fields = {k: v for k, v in asdict(self.spec).items() if k not in ("generations", "seed")}
        rows = []
        for g in self.generations:
            real, synthetic = g.counts["real"], g.counts["synthetic"]
            for metric, value in g.metrics.items():
                rows.append({
                    "run": self.name, "seed": self.spec.seed, "generation": g.generation,
                    "metric": metric, "value": value, **fields, "n_train": real + synthetic,
                    "n_train_real": real, "n_train_synthetic": synthetic,
                })  # fmt: skip
        return rows


class Context:
    """What a step may use while training generation t: named seed streams, real draws, the
    earlier generations of its run and their models."""

    def __init__(self, spec, source, make_model, root, history, t):
        self.spec, self.source, self.make_model = spec, source, make_model
        self.root, self.history, self.t = root, history, t
        self._initial = None

    def seed(self, stage: str, t: int | None = None) -> int:
        return stage_seed(self.spec.seed, stage, self.t if t is None else t)

    def generator(self, stage: str, t: int | None = None) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed(stage, t))

    def draw(self, n: int, t: int | None = None):
        """A real draw of n items from the ``real`` stream of generation t (default: this one)."""
        x, y = self.source.sample(n, generator=self.generator("real", t))
        return check_items("source.sample", x, y, n)

    def initial(self):
        """Generation 1's real draw (``spec.n_first_draw`` items), made once."""
        if self._initial is None:
            self._initial = self.draw(self.spec.n_first_draw, 1)
        return self._initial

    def model(self, t: int):
        """A fresh model holding generation t's weights (t < the generation being trained)."""
        return load_model(self.make_model, self.root, t)


def stage_seed(seed: int, stage: str, t: int) -> int:
    """The seed of one stage of one generation: a named stream of ``seeds``, not an offset."""
    return seeds.derive(seed, stage, t)


def gen_dir(t: int) -> str:
    return f"gen_{t:02d}"


def load_model(make_model, root: Path, t: int):
    """A fresh model holding the weights saved for generation t of the run in ``root``."""
    model = make_model()
    model.load_state_dict(store.load(root / gen_dir(t) / "model.pt"))
    return model


def identity_key(model, source, key=None) -> dict:
    """The run's key: the model's ``settings()``, the source's identity and an optional extra
    mapping (what neither can see, e.g. the digest of pretrained weights)."""
    if not callable(getattr(model, "settings", None)):
        raise ValueError(f"make_model() must return a model with settings(), got {model!r}")
    return store.json_key({"model": model.settings(), "source": source_identity(source),
                           "extra": store.json_key(key)})  # fmt: skip


def source_identity(source) -> dict:
    """A data source's identity: its ``identity()`` when it has one, else its type and name
    (then ``key`` must say whatever else tells two such sources apart)."""
    if callable(getattr(source, "identity", None)):
        return source.identity()
    return {"type": type(source).__qualname__, "name": str(getattr(source, "name", ""))}


@contextmanager
def threads(n: int | None):
    """Run a block with n torch and BLAS threads (restored after); None leaves them as they are.

    Float sums depend on how work is split between threads, so a fixed count per run is what
    makes two runs of the same spec give identical numbers on any machine and under any load."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def run(spec: RunSpec, make_model, source, evaluate, run_dir, key=None, name: str = "",
        progress=True, share_first=True, n_threads: int | None = 1) -> Run:  # fmt: skip
    """Run (or resume) ``spec``; see the module docstring.

    ``make_model()`` -> a fresh model of the protocol in ``mcollapse.models``;
    ``source.sample(n, generator)`` -> real (x, y); ``evaluate(x, y, model, generation)`` ->
    {metric: number} for that generation's ``spec.n_draw`` samples (see ``mcollapse.evaluation``).
    The run's hash covers the spec, the model's ``settings()``, the source's identity and ``key``.
    """
    if not isinstance(spec, RunSpec):
        raise ValueError(
            f"spec must be a RunSpec (LoopSpec, ReflowSpec), got {type(spec).__name__}"
        )
    spec = replace(spec)  # re-validate, even a spec whose fields were forced
    for arg, fn in (("make_model", make_model), ("evaluate", evaluate)):
        if not callable(fn):
            raise ValueError(f"{arg} must be callable, got {fn!r}")
    if not callable(getattr(source, "sample", None)):
        raise ValueError(f"source must have a sample(n, generator) method, got {source!r}")
    if not isinstance(run_dir, str | os.PathLike) or Path(run_dir).is_file():
        raise ValueError(f"run_dir must be a path to a directory, got {run_dir!r}")
    n_threads = None if n_threads is None else check_int("n_threads", n_threads, minimum=1)
    store.json_key(key)  # a bad key fails here, before any model is made
    probe = make_model()
    if spec.init == "finetune" and not getattr(probe, "finetunes", True):
        raise ValueError(
            f"init='finetune' is not supported by {type(probe).__name__} (its fit trains from"
            " scratch); use init='scratch'"
        )
    full_key = identity_key(probe, source, key)
    h = spec.hash(full_key)
    root = Path(run_dir) / h
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"), threads(n_threads):
        generations = _generations(spec, make_model, source, evaluate, Path(run_dir), root,
                                   full_key, h, progress, share_first, n_threads)  # fmt: skip
    return Run(name or spec.identity()["step"], spec, root, generations, make_model)


def _generations(spec, make_model, source, evaluate, run_dir, root, key, h, progress,
                 share_first, n_threads):  # fmt: skip
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__, "mcollapse": __version__}  # fmt: skip
    results: list[Generation] = []
    recomputed = False
    ctx = Context(spec, source, make_model, root, results, 1)
    scorer = evaluator_identity(evaluate)
    bar = tqdm(range(1, spec.generations + 1), desc=f"{type(spec).__name__} {h}", unit="gen",
               disable=not progress)  # fmt: skip
    for t in bar:
        ctx.t = t
        gdir = root / gen_dir(t)
        sd = {s: ctx.seed(s) for s in spec.STAGES}
        problem = f"{gdir}: an earlier generation was recomputed" if recomputed else None
        if not recomputed and gdir.exists():
            bar.set_postfix_str("verify")
            loaded, problem, scored_by = _load_generation(gdir, spec, key, h, t)
            if loaded is not None:
                if scored_by != scorer:  # same model and samples, another evaluator
                    bar.set_postfix_str("re-evaluate")
                    loaded.metrics = _rescore(gdir, loaded, make_model, evaluate, scorer)
                results.append(loaded)
                continue
        vouched = None if recomputed else _vouched(gdir, h, t)  # only in an interrupted generation
        if gdir.exists():
            also = "; its model.pt is vouched for by model.json and reused" if vouched else ""
            warnings.warn(f"{problem}; recomputing generation {t}{also}", RunWarning, stacklevel=3)
            for p in gdir.iterdir():
                if not (vouched and p.name in ("model.pt", "model.json")):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        recomputed = True
        gdir.mkdir(exist_ok=True)
        lap = _Laps(bar)
        if vouched:
            model, counts = load_model(make_model, root, t), vouched["counts"]
        else:
            model, counts = _train(spec, t, make_model, ctx, run_dir, key, share_first)
            store.save(gdir / "model.pt", model.state_dict())
            store.save_json(gdir / "model.json", {"spec_hash": h, "generation": t, "counts": counts,
                                                  "sha256": store.sha256(gdir / "model.pt")})  # fmt: skip
        lap("train")
        if t == 1 and share_first:
            sx, sy, metrics = _shared_scores(spec, model, ctx, evaluate, lap, scorer,
                                             _first_dir(spec, run_dir, key))  # fmt: skip
        else:
            sx, sy, metrics = _sample_and_score(spec, model, ctx, evaluate, lap)
        store.save(gdir / "samples.pt", {"x": sx, "y": sy})
        store.save_json(gdir / "metrics.json", metrics)
        manifest = {
            "spec": asdict(spec), "identity": spec.identity(), "key": key, "spec_hash": h,
            "generation": t, "seeds": sd, "counts": counts, "n_eval": spec.n_draw,
            "evaluator": scorer,
            "threads": n_threads, "seconds": lap.seconds, "versions": versions,
            "files": {f: store.sha256(gdir / f) for f in FILES},
        }  # fmt: skip
        store.save_json(
            gdir / "manifest.json", {**manifest, "manifest_sha256": store.digest(manifest)}
        )
        results.append(Generation(t, counts, _provenance(counts), (sx, sy), metrics, sd,
                                  lap.seconds, False))  # fmt: skip
    bar.close()
    return results


def _train(spec, t, make_model, ctx, run_dir, key, share_first):
    """(model of generation t, counts): generation 1 on the real draw (shared between runs),
    later ones through the step."""
    if t > 1:
        model = ctx.model(t - 1) if spec.init == "finetune" else make_model()
        return model, _check_counts(spec.train(t, model, ctx))
    model = make_model()
    n = spec.n_first
    counts = {"real": n, "synthetic": 0, "by_provenance": {"0": n}}
    if not share_first:
        x, y = ctx.initial()
        model.fit(x[:n], y[:n], generator=ctx.generator("train"))
        return model, counts
    shared = _first_dir(spec, run_dir, key)
    with FileLock(str(shared) + ".lock"):
        loaded = _load_shared(make_model, shared)
        if loaded is not None:
            return loaded, counts
        x, y = ctx.initial()
        model.fit(x[:n], y[:n], generator=ctx.generator("train"))
        shared.mkdir(parents=True, exist_ok=True)
        store.save(shared / "model.pt", model.state_dict())
        store.save_json(shared / "model.json", {"sha256": store.sha256(shared / "model.pt")})
    return model, counts


def _first_dir(spec, run_dir: Path, key) -> Path:
    """Where the generation-1 model shared by the runs of one real draw lives."""
    return run_dir / "first" / store.digest({**spec.first_identity(), "key": key})[:12]


def _sample_and_score(spec, model, ctx, evaluate, lap):
    """(x, y, metrics): the generation's ``spec.n_draw`` samples and what ``evaluate`` makes of them."""
    sx, sy = model.sample(spec.n_draw, spec.bias, generator=ctx.generator("sample"))
    sx, sy = check_items("model.sample", sx, sy, spec.n_draw)
    lap("sample")
    metrics = _check_metrics(evaluate(sx, sy, model, ctx.t))
    lap("evaluate")
    return sx, sy, metrics


def _shared_scores(spec, model, ctx, evaluate, lap, scorer, shared: Path):
    """Generation 1's samples and metrics, made once like its model: every run sharing the model
    with the same sampling bias, sample count and evaluator would draw and score the very same
    samples (the sample stream depends on the seed and the generation only)."""
    scored = shared.with_name(shared.name + "-scored-" + store.digest(
        {"bias": spec.bias, "n": spec.n_draw, "evaluator": scorer, "seed": ctx.seed("sample")})[:12])  # fmt: skip
    with FileLock(str(scored) + ".lock"):
        try:
            side = json.loads((scored / "record.json").read_text())
            if side["sha256"] == store.sha256(scored / "samples.pt"):
                samples = store.load(scored / "samples.pt")
                lap("sample")
                lap("evaluate")
                return samples["x"], samples["y"], _check_metrics(side["metrics"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or unusable: score afresh and overwrite
        sx, sy, metrics = _sample_and_score(spec, model, ctx, evaluate, lap)
        scored.mkdir(parents=True, exist_ok=True)
        store.save(scored / "samples.pt", {"x": sx, "y": sy})
        store.save_json(scored / "record.json",
                        {"metrics": metrics, "sha256": store.sha256(scored / "samples.pt")})  # fmt: skip
    return sx, sy, metrics


def _load_shared(make_model, shared: Path):
    """A fresh model holding the shared generation 1, if its record vouches for it; else None."""
    if not (shared / "model.json").exists():
        return None
    try:
        side = json.loads((shared / "model.json").read_text())
        if side != {"sha256": store.sha256(shared / "model.pt")}:
            raise ValueError("model.pt does not match its recorded sha256 (truncated or altered)")
        model = make_model()
        model.load_state_dict(store.load(shared / "model.pt"))
        return model
    except Exception as err:
        warnings.warn(
            f"{shared}: shared generation-1 model unusable ({type(err).__name__}: {err});"
            " retraining it",
            RunWarning,
            stacklevel=4,
        )
        return None


def evaluator_identity(evaluate) -> dict:
    """What an evaluator computes: its ``identity()`` when it has one (the evaluators of
    ``mcollapse.evaluation``), else its name. Stored metrics of another evaluator are recomputed
    from the stored samples and model, without retraining."""
    if callable(getattr(evaluate, "identity", None)):
        return store.json_key(evaluate.identity())
    return {"type": getattr(evaluate, "__qualname__", type(evaluate).__qualname__)}


def _rescore(gdir, loaded, make_model, evaluate, scorer) -> dict:
    """Evaluate a verified generation again and record the new metrics in its manifest."""
    model = load_model(make_model, gdir.parent, loaded.generation)
    metrics = _check_metrics(evaluate(*loaded.samples, model, loaded.generation))
    store.save_json(gdir / "metrics.json", metrics)
    manifest = json.loads((gdir / "manifest.json").read_text())
    manifest.pop("manifest_sha256")
    manifest["evaluator"] = scorer
    manifest["files"]["metrics.json"] = store.sha256(gdir / "metrics.json")
    store.save_json(gdir / "manifest.json", {**manifest, "manifest_sha256": store.digest(manifest)})
    return metrics


def _load_generation(gdir, spec, key, h, t):
    """(the verified generation in gdir, None, the evaluator that scored it) or
    (None, "path: what is wrong", None)."""
    try:
        problem = _verify(gdir, spec, key, h, t)
        if problem:
            return None, problem, None
        manifest = json.loads((gdir / "manifest.json").read_text())
        samples = store.load(gdir / "samples.pt")
        metrics = json.loads((gdir / "metrics.json").read_text())
        counts = manifest["counts"]
        return Generation(t, counts, _provenance(counts), (samples["x"], samples["y"]), metrics,
                          manifest["seeds"], manifest["seconds"], True), None, manifest.get(
            "evaluator")  # fmt: skip
    except Exception as err:  # even verified files that do not load are recomputed, loudly
        return None, f"{gdir}: does not load ({type(err).__name__}: {err})", None


def _verify(gdir, spec, key, h, t) -> str | None:
    """The first problem found in gdir, as "path: reason", or None when all is sound."""
    path = gdir / "manifest.json"
    if not path.is_file():
        return f"{path}: missing (interrupted run?)"
    try:
        manifest = json.loads(path.read_text())
        recorded = manifest.pop("manifest_sha256")
    except (OSError, ValueError, KeyError, AttributeError) as err:
        return f"{path}: unreadable ({type(err).__name__}: {err})"
    if recorded != store.digest(manifest):
        return f"{path}: altered (its recorded sha256 does not match)"
    found = [manifest.get(k) for k in ("identity", "key", "spec_hash", "generation")]
    if found != [spec.identity(), key, h, t]:
        return f"{path}: written for another spec, key or generation"
    for name in FILES:
        if not (gdir / name).is_file():
            return f"{gdir / name}: missing"
        if store.sha256(gdir / name) != manifest["files"].get(name):
            return f"{gdir / name}: does not match its recorded sha256 (truncated or altered)"
    return None


def _vouched(gdir, h, t) -> dict | None:
    """model.json of a manifest-less (interrupted) generation when it vouches for model.pt."""
    if not gdir.exists() or (gdir / "manifest.json").exists():
        return None
    try:
        side = json.loads((gdir / "model.json").read_text())
        ok = (side.get("spec_hash"), side.get("generation")) == (h, t)
        return side if ok and side.get("sha256") == store.sha256(gdir / "model.pt") else None
    except (OSError, ValueError, AttributeError):
        return None


def _provenance(counts) -> torch.Tensor | None:
    """The training items' provenance, in training-set order (real first, then by generation)."""
    by = counts.get("by_provenance")
    if by is None:
        return None
    keys = sorted(by, key=int)
    return torch.repeat_interleave(torch.tensor([int(k) for k in keys], dtype=torch.int16),
                                   torch.tensor([by[k] for k in keys]))  # fmt: skip


def _check_counts(counts) -> dict:
    if not (isinstance(counts, Mapping) and all(k in counts for k in ("real", "synthetic"))):
        raise ValueError(
            f"a step's train must return counts with 'real' and 'synthetic', got {counts!r}"
        )
    return json.loads(json.dumps(dict(counts), sort_keys=True))


def check_items(name, x, y, n):
    if not (torch.is_tensor(x) and torch.is_tensor(y) and len(x) == n and y.shape == (n,)):
        raise ValueError(
            f"{name} must return tensors x (n, ...) and y (n,) with n={n}, got {x!r}, {y!r}"
        )
    return x.detach().cpu(), y.detach().cpu()


def _check_metrics(metrics) -> dict[str, float]:
    try:
        if isinstance(metrics, Mapping) and all(isinstance(k, str) for k in metrics):
            return {k: float(metrics[k]) for k in sorted(metrics)}
    except (TypeError, ValueError):
        pass
    raise ValueError(f"evaluate must return a mapping of str to number, got {metrics!r}")


class _Laps:
    """Wall seconds per stage; shows the stage just finished in the progress bar."""

    def __init__(self, bar):
        self.bar, self.seconds, self.clock = bar, {}, time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage], self.clock = now - self.clock, now
        self.bar.set_postfix_str(stage)


# ------------------------------------------------------------------------------------------------
# Sweeps: specs x seeds, in parallel
# ------------------------------------------------------------------------------------------------


def sweep(specs: Mapping[str, RunSpec], seeds: Sequence[int], make_model, source, evaluate,
          run_dir, key=None, n_jobs: int | None = None, scheduler=None, progress=True,
          n_threads: int = 1) -> dict[str, list[Run]]:  # fmt: skip
    """Every named spec at every seed; returns {name: [Run per seed, in the order of seeds]}.

    The (spec, seed) runs are independent, so they go in parallel: ``n_jobs`` local processes
    (default: one per core, one per run at most; 1 runs in this process) with one torch / BLAS
    thread each (``n_threads``), or the Dask cluster of ``scheduler`` (an address such as "tcp://HOST:8786", a
    ``distributed.Client``, or the ``MCOLLAPSE_SCHEDULER`` environment variable). ``run_dir``
    must then be on storage every worker sees. Generation-1 models are queued first, once per
    distinct real draw, then the runs, longest first by ``spec.cost()``, so that no core idles
    while another finishes a long run. Runs on disk are reused.
    """
    if not isinstance(specs, Mapping) or not specs:
        raise ValueError(f"specs must be a non-empty mapping of name to spec, got {specs!r}")
    seeds = [check_int("seed", s, minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    for name, spec in specs.items():
        if not isinstance(spec, RunSpec):
            raise ValueError(f"specs[{name!r}] must be a RunSpec, got {type(spec).__name__}")
    jobs = [(name, replace(spec, seed=s)) for name, spec in specs.items() for s in seeds]
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i][1].cost())  # longest first, stable
    first, firsts = {}, []
    for name, spec in jobs:  # one run per distinct generation 1, cut to that generation
        ident = json.dumps(spec.first_identity(), sort_keys=True)
        if ident not in first:
            first[ident] = True
            firsts.append((name, replace(spec, generations=1)))
    n_threads = check_int("n_threads", n_threads, minimum=1)
    args = (make_model, source, evaluate, str(run_dir), key, n_threads)
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if n_jobs is None:
        n_jobs = 1 if torch.cuda.is_available() else min(os.cpu_count() or 1, len(jobs))
    n_jobs = check_int("n_jobs", n_jobs, minimum=1)
    if scheduler is None and n_jobs == 1:
        for _, spec in firsts:
            _first_only(spec, *args)
        runs = [_run_quietly(spec, *args, name=name, progress=progress) for name, spec in jobs]
    else:
        # one queue, no barrier: the generation-1 models first, then the runs; a run whose
        # generation 1 another worker is still training waits on that run's lock
        calls = [(_first_only, name, spec) for name, spec in firsts]
        calls += [(_run_quietly, *jobs[i]) for i in order]
        done = _parallel(calls, args, n_jobs, scheduler, "runs", progress)[len(firsts) :]
        runs = [None] * len(jobs)
        for i, r in zip(order, done, strict=True):
            runs[i] = r
    out: dict[str, list[Run]] = {name: [] for name in specs}
    for (name, _), r in zip(jobs, runs, strict=True):
        r.make_model = make_model
        out[name].append(r)
    return out


def _run_quietly(spec, make_model, source, evaluate, run_dir, key, n_threads, name="",
                 progress=False) -> Run:  # fmt: skip
    """One run; in a worker without progress bars (the parent shows one over runs)."""
    r = run(spec, make_model, source, evaluate, run_dir, key=key, name=name, progress=progress,
            n_threads=n_threads)  # fmt: skip
    r.make_model = None  # the parent holds it; closures need not travel back
    return r


def _first_only(spec, make_model, source, evaluate, run_dir, key, n_threads, name=None) -> None:
    """Train (or verify on disk) the shared generation-1 model of ``spec``, nothing else: its
    samples are drawn by each run with its own bias."""
    full_key = identity_key(make_model(), source, key)
    root = Path(run_dir) / spec.hash(full_key)
    with threads(n_threads):
        _train(spec, 1, make_model, Context(spec, source, make_model, root, [], 1), Path(run_dir),
               full_key, share_first=True)  # fmt: skip


def _parallel(calls, args, n_jobs, scheduler, what, progress) -> list:
    """``task(spec, *args, name=name)`` for each (task, name, spec), in order where possible."""
    from joblib import Parallel, delayed, parallel_config

    tasks = [delayed(task)(spec, *args, name=name) for task, name, spec in calls]
    client = None
    if scheduler is not None:
        from distributed import Client

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        config = parallel_config(backend="dask", wait_for_workers_timeout=60)
    else:
        config = parallel_config(backend="loky", n_jobs=n_jobs, inner_max_num_threads=args[-1])
    try:
        with config:
            out = Parallel(return_as="generator")(tasks)
            return list(tqdm(out, total=len(tasks), desc=what, unit="run", disable=not progress))
    finally:
        if client is not None and client is not scheduler:
            client.close()


def tidy(results) -> list[dict]:
    """The records of every run in one list: of a sweep ({name: [Run]}), {name: Run} or [Run]."""
    values = results.values() if isinstance(results, Mapping) else [results]
    runs = [r for v in values for r in ([v] if isinstance(v, Run) else v)]
    return [row for r in runs for row in r.records()]
