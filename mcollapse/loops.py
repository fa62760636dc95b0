"""The loop engine: train, sample, compose the next training set, evaluate; keep every generation.

A loop is a frozen, validated ``LoopSpec``; ``run_loop`` runs it for any model that implements the
protocol of ``mcollapse.models``. Each generation lives in ``run_dir/<spec hash>/gen_NN/`` with a
manifest, written last, that holds the sha256 of every other file: a re-run loads the generations
it can verify, resumes an interrupted one, and recomputes, with a warning, anything missing,
truncated, altered or written for another spec. Nothing on disk is used unverified.

Provenance of a training item: 0 = real, s = sampled by generation s.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__, seeds, store
from ._checks import check_bias, check_choice, check_int

KINDS = ("fully_synthetic", "synthetic_augmented", "fresh_data")
POOLS = ("previous", "accumulate", "accumulate_subsample")
INITS = ("scratch", "finetune")
STAGES = ("real", "train", "sample", "subsample")  # each its own named stream per generation
FILES = ("model.pt", "model.json", "samples.pt", "metrics.json")


class LoopWarning(UserWarning):
    """Something on disk could not be used and is being recomputed."""


@dataclass(frozen=True)
class LoopSpec:
    """What a loop does; see DESIGN.md section 2. Validated on construction."""

    kind: str
    generations: int
    n_initial: int
    n_real: int = 0
    n_synthetic: int = 0
    bias: float = 1.0
    synthetic_pool: str = "previous"
    init: str = "scratch"
    seed: int = 0
    n_eval: int = 0

    def __post_init__(self):
        check_choice("kind", self.kind, KINDS)
        for name in ("generations", "n_initial", "n_real", "n_synthetic", "seed", "n_eval"):
            low = 1 if name in ("generations", "n_initial") else 0
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))
        object.__setattr__(self, "bias", check_bias("bias", self.bias))
        check_choice("synthetic_pool", self.synthetic_pool, POOLS)
        check_choice("init", self.init, INITS)
        kind = self.kind
        if kind == "fully_synthetic" and self.n_real != 0:
            raise ValueError(f"n_real must be 0 for kind='fully_synthetic', got {self.n_real}")
        if kind != "fully_synthetic" and self.n_real < 1:
            raise ValueError(f"n_real must be >= 1 for kind={kind!r}, got {self.n_real}")
        if kind != "fresh_data" and self.n_synthetic < 1:
            raise ValueError(f"n_synthetic must be >= 1 for kind={kind!r}, got {self.n_synthetic}")
        if self.n_synthetic == 0 and self.n_eval == 0:
            raise ValueError(
                "n_eval must be >= 1 when n_synthetic is 0 (nothing to evaluate), got 0"
            )

    @property
    def n_draw(self) -> int:
        """Items each generation samples: the first n_synthetic feed the next, all are evaluated."""
        return max(self.n_synthetic, self.n_eval)

    def identity(self) -> dict:
        """The fields that decide what each generation computes: all but ``generations``.

        Generation t does not depend on how many follow it, so a longer run of the same loop
        reuses the generations a shorter one finished.
        """
        return {k: v for k, v in asdict(self).items() if k != "generations"}

    def hash(self, key=None) -> str:
        """12 hex digits of sha256 over the identity and a JSON-able ``key`` (model, data, profile)."""
        return store.digest({"spec": self.identity(), "key": store.json_key(key)})[:12]


@dataclass
class GenerationResult:
    generation: int
    counts: dict  # {"real": n, "synthetic": n, "by_provenance": {"0": n, "1": n, ...}}
    provenance: torch.Tensor  # int16, one entry per training item, in training-set order
    samples: tuple[torch.Tensor, torch.Tensor]
    metrics: dict[str, float]
    seeds: dict[str, int]
    seconds: dict[str, float]
    resumed: bool  # loaded from disk, not recomputed


@dataclass
class LoopResult:
    spec: LoopSpec
    run_dir: Path
    generations: list[GenerationResult]
    make_model: object = field(repr=False, default=None)

    def records(self) -> list[dict]:
        """Tidy rows, one per generation and metric, ready for a DataFrame or a CSV."""
        s, rows = self.spec, []
        for g in self.generations:
            real, synthetic = g.counts["real"], g.counts["synthetic"]
            for name, value in g.metrics.items():
                rows.append({
                    "generation": g.generation, "metric": name, "value": value, "kind": s.kind,
                    "bias": s.bias, "synthetic_pool": s.synthetic_pool, "init": s.init,
                    "seed": s.seed, "n_train": real + synthetic, "n_train_real": real,
                    "n_train_synthetic": synthetic, "n_eval": s.n_draw,
                })  # fmt: skip
        return rows

    def final_model(self):
        """A fresh model holding the last generation's state."""
        model = self.make_model()
        model.load_state_dict(store.load(self.run_dir / _gen(self.spec.generations) / "model.pt"))
        return model


def run_loop(
    spec, make_model, source, evaluate, run_dir, key=None, progress=True, share_first=True
) -> LoopResult:
    """Run (or resume) ``spec``; see the module docstring and DESIGN.md section 2.

    ``make_model()`` -> a fresh model; ``source.sample(n, generator)`` -> real (x, y);
    ``evaluate(x, y, model, generation)`` -> {metric: value} for that generation's samples; it
    gets nothing random and must make its own streams if it needs any. Tensors handed to fit and
    evaluate are on the CPU; a model moves them to its device. ``key`` (a JSON-able mapping: model
    settings, data source, profile) enters the run's hash, so different settings never share a
    directory.

    Generation 1 trains on real data only, so its model depends on the seed, the real draw and the
    key, not on the loop's kind, bias or pool. With ``share_first`` it is trained once and kept in
    ``run_dir/first/<hash>/``: every loop in ``run_dir`` that starts from the same model reuses it
    (verified by sha256, retrained with a warning when damaged) and samples it with its own bias.
    """
    if not isinstance(spec, LoopSpec):
        raise ValueError(f"spec must be a LoopSpec, got {type(spec).__name__}")
    spec = LoopSpec(**asdict(spec))  # re-validate, even a spec whose fields were forced
    for name, fn in [("make_model", make_model), ("evaluate", evaluate)]:
        if not callable(fn):
            raise ValueError(f"{name} must be callable, got {fn!r}")
    if not callable(getattr(source, "sample", None)):
        raise ValueError(f"source must have a sample(n, generator) method, got {source!r}")
    if not isinstance(run_dir, str | os.PathLike) or Path(run_dir).is_file():
        raise ValueError(f"run_dir must be a path to a directory, got {run_dir!r}")
    key, h = store.json_key(key), spec.hash(key)
    root = Path(run_dir) / h
    root.mkdir(parents=True, exist_ok=True)
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "numpy": np.__version__, "mcollapse": __version__}  # fmt: skip

    def stage_seeds(t):
        return {
            s: int(seeds.seed_sequence(spec.seed, s, t).generate_state(1, np.uint64)[0])
            for s in STAGES
        }

    initial = []  # the one real draw of size max(n_initial, n_real), made only when needed

    def real(t):
        if spec.kind == "fresh_data" and t > 1:
            return _draw(source, spec.n_real, stage_seeds(t)["real"])
        if not initial:
            initial.extend(_draw(source, max(spec.n_initial, spec.n_real), stage_seeds(1)["real"]))
        n = spec.n_initial if t == 1 else spec.n_real
        return initial[0][:n], initial[1][:n]

    results: list[GenerationResult] = []
    recomputed = False
    bar = tqdm(
        range(1, spec.generations + 1), desc=f"{spec.kind} {h}", unit="gen", disable=not progress
    )
    for t in bar:
        gdir, sd = root / _gen(t), stage_seeds(t)
        problem = f"{gdir}: an earlier generation was recomputed" if recomputed else None
        if not recomputed and gdir.exists():
            bar.set_postfix_str("verify")
            loaded, problem = _load_generation(gdir, spec, key, h, t)
            if loaded is not None:
                results.append(loaded)
                continue
        reuse = not recomputed and _vouched(gdir, h, t)  # only in an interrupted generation
        if gdir.exists():
            also = "; its model.pt is vouched for by model.json and reused" if reuse else ""
            warnings.warn(f"{problem}; recomputing generation {t}{also}", LoopWarning, stacklevel=2)
            for p in gdir.iterdir():
                if not (reuse and p.name in ("model.pt", "model.json")):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        recomputed = True
        gdir.mkdir(exist_ok=True)
        lap = _Laps(bar)
        x, y, prov = _compose(spec, t, real, results, _generator(sd["subsample"]))
        lap("compose")
        model = make_model()
        if reuse:
            model.load_state_dict(store.load(gdir / "model.pt"))
        else:
            if spec.init == "finetune" and t > 1:
                model.load_state_dict(store.load(root / _gen(t - 1) / "model.pt"))
            shared = _shared_first(Path(run_dir), spec, key) if share_first and t == 1 else None
            loaded = _load_shared(make_model, shared) if shared is not None else None
            if loaded is not None:
                model = loaded
            else:
                model.fit(x, y, generator=_generator(sd["train"]))
                if shared is not None:
                    _save_shared(model, shared)
            store.save(gdir / "model.pt", model.state_dict())
            store.save_json(gdir / "model.json", {"spec_hash": h, "generation": t,
                                             "sha256": store.sha256(gdir / "model.pt")})  # fmt: skip
        lap("train")
        sx, sy = model.sample(spec.n_draw, spec.bias, generator=_generator(sd["sample"]))
        sx, sy = _check_items("model.sample", sx, sy, spec.n_draw)
        store.save(gdir / "samples.pt", {"x": sx, "y": sy})
        lap("sample")
        metrics = _check_metrics(evaluate(sx, sy, model, t))
        store.save_json(gdir / "metrics.json", metrics)
        lap("evaluate")
        by = dict(zip(*(v.tolist() for v in torch.unique(prov, return_counts=True)), strict=True))
        n_real = by.get(0, 0)
        counts = {"real": n_real, "synthetic": len(prov) - n_real,
                  "by_provenance": {str(k): v for k, v in by.items()}}  # fmt: skip
        manifest = {
            "spec": asdict(spec), "key": key, "spec_hash": h, "generation": t, "seeds": sd,
            "counts": counts, "n_eval": spec.n_draw, "seconds": lap.seconds, "versions": versions,
            "files": {name: store.sha256(gdir / name) for name in FILES},
        }  # fmt: skip
        store.save_json(
            gdir / "manifest.json", {**manifest, "manifest_sha256": store.digest(manifest)}
        )
        results.append(GenerationResult(t, counts, prov, (sx, sy), metrics, sd, lap.seconds, False))
    bar.close()
    return LoopResult(spec, root, results, make_model)


def run_loops(specs: Mapping[str, LoopSpec], make_model, source, evaluate, run_dir, key=None,
              progress=True) -> dict[str, LoopResult]:  # fmt: skip
    """Several named loops of one model on one data source, run in order in the same ``run_dir``
    (so they share their generation 1 where they can). Returns {name: LoopResult}."""
    if not isinstance(specs, Mapping) or not specs:
        raise ValueError(f"specs must be a non-empty mapping of name to LoopSpec, got {specs!r}")
    return {
        name: run_loop(spec, make_model, source, evaluate, run_dir, key=key, progress=progress)
        for name, spec in specs.items()
    }


def tidy(results: Mapping[str, LoopResult]) -> list[dict]:
    """The records of several named loops in one list, each row with its loop's name in ``loop``."""
    return [{"loop": name, **row} for name, r in results.items() for row in r.records()]


def _compose(spec, t, real, results, subsample_generator):
    """Generation t's training set (x, y, provenance), real items first, then by provenance."""
    parts = [(*real(t), 0)] if t == 1 or spec.kind != "fully_synthetic" else []
    if t > 1:
        first = t - 1 if spec.synthetic_pool == "previous" else 1
        pool = [(r.samples[0][: spec.n_synthetic], r.samples[1][: spec.n_synthetic], r.generation)
                for r in results[first - 1 : t - 1]]  # fmt: skip
        if spec.synthetic_pool == "accumulate_subsample":
            px, py = (torch.cat([p[i] for p in pool]) for i in (0, 1))
            pp = torch.cat([torch.full((len(p[0]),), p[2], dtype=torch.int16) for p in pool])
            order = torch.randperm(len(px), generator=subsample_generator)
            keep = order[: spec.n_synthetic].sort().values
            pool = [(px[keep], py[keep], pp[keep])]
        parts += pool
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    prov = [p[2] if torch.is_tensor(p[2]) else torch.full((len(p[0]),), p[2]) for p in parts]
    return x, y, torch.cat(prov).to(torch.int16)


def _shared_first(run_dir: Path, spec: LoopSpec, key) -> Path:
    """Where generation 1's model lives for every loop that trains it on the same real data."""
    same = {"seed": spec.seed, "n_initial": spec.n_initial,
            "draw": max(spec.n_initial, spec.n_real), "key": key}  # fmt: skip
    return run_dir / "first" / store.digest(same)[:12]


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
            LoopWarning,
            stacklevel=3,
        )
        return None


def _save_shared(model, shared: Path) -> None:
    shared.mkdir(parents=True, exist_ok=True)
    store.save(shared / "model.pt", model.state_dict())
    store.save_json(shared / "model.json", {"sha256": store.sha256(shared / "model.pt")})


def _load_generation(gdir, spec, key, h, t):
    """(the verified generation in gdir, None) or (None, "path: what is wrong")."""
    try:
        problem = _verify(gdir, spec, key, h, t)
        if problem:
            return None, problem
        manifest = json.loads((gdir / "manifest.json").read_text())
        samples = store.load(gdir / "samples.pt")
        metrics = json.loads((gdir / "metrics.json").read_text())
        counts = manifest["counts"]
        by = dict(sorted(counts["by_provenance"].items(), key=lambda kv: int(kv[0])))
        counts["by_provenance"] = by
        prov = torch.repeat_interleave(
            torch.tensor([int(k) for k in by], dtype=torch.int16), torch.tensor(list(by.values()))
        )
        return GenerationResult(t, counts, prov, (samples["x"], samples["y"]), metrics,
                                manifest["seeds"], manifest["seconds"], True), None  # fmt: skip
    except Exception as err:  # even verified files that do not load are recomputed, loudly
        return None, f"{gdir}: does not load ({type(err).__name__}: {err})"


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
    found = [manifest.get(k) for k in ("spec", "key", "spec_hash", "generation")]
    if isinstance(found[0], dict):
        found[0] = {k: v for k, v in found[0].items() if k != "generations"}
    if found != [spec.identity(), key, h, t]:
        return f"{path}: written for another spec, key or generation"
    for name in FILES:
        if not (gdir / name).is_file():
            return f"{gdir / name}: missing"
        if store.sha256(gdir / name) != manifest["files"].get(name):
            return f"{gdir / name}: does not match its recorded sha256 (truncated or altered)"
    return None


def _vouched(gdir, h, t) -> bool:
    """A model.pt in a manifest-less (interrupted) generation is reused only if model.json vouches."""
    if (gdir / "manifest.json").exists():
        return False
    try:
        side = json.loads((gdir / "model.json").read_text())
        return side == {"spec_hash": h, "generation": t, "sha256": store.sha256(gdir / "model.pt")}
    except (OSError, ValueError):
        return False


class _Laps:
    """Wall seconds per stage; shows the stage just finished in the progress bar."""

    def __init__(self, bar):
        self.bar, self.seconds, self.clock = bar, {}, time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage], self.clock = now - self.clock, now
        self.bar.set_postfix_str(stage)


def _draw(source, n, seed):
    return _check_items("source.sample", *source.sample(n, generator=_generator(seed)), n)


def _check_items(name, x, y, n):
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


def _gen(t: int) -> str:
    return f"gen_{t:02d}"


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
