"""Profiles: one parameter, ``profile``, picks the sizes a notebook runs at.

- ``ci``: every code path runs in about a minute or two on 2 CPU cores; figures go to build/.
- ``cpu``: the default for readers; the papers' qualitative claims appear and are asserted.
- ``gpu``: closer to paper scale, for one GPU.
"""

from __future__ import annotations

import copy
from pathlib import Path

from . import paths
from ._checks import check_choice

PROFILES = ("ci", "cpu", "gpu")
# Independent seeds per trained-model curve: statistics over seeds need at least 3 for a claim.
SEEDS = {"ci": 2, "cpu": 3, "gpu": 5}

# Sizes per notebook at the ``cpu`` profile: what readers run and the committed figures show.
# Model sub-tables are constructor keyword arguments. Keys are what the notebooks read.
_CPU: dict[str, dict] = {
    "01": {
        "chains_1d": 10_000,
        "generations_1d": 2000,
        "chains_table": 400_000,
        "chains_d": 2000,
        "generations_d": 200,
        "long_generations_d": 2000,
        "chains_pool": 400,
        "generations_pool": 200,
        "chains_regression": 20_000,
        "chains_ratio": 2000,
        "generations_ratio": 200,
        "chains_check": 10_000,
    },
    "02": {
        "dataset": "digits",
        "pad": 0,
        "resolution": 8,
        "channels": 32,
        "z_dim": 64,
        "steps": 2000,
        "batch": 32,
        "lr": 0.02,
        "gamma": 1.0,
        "augment": "color",
        "ema_images": 10_000,
        "generations": 3,
        "n_initial": 1297,
        "n_synthetic": 1297,
        "n_eval": 1000,
        "grid": 36,
        "fid_bound": 5.0,
    },
    "03": {
        "dataset": "digits",
        "ddpm": {
            "width": 32,
            "mults": [1, 2],
            "blocks": 1,
            "timesteps": 500,
            "schedule": "cosine",
            "steps": 400,
            "batch_size": 64,
            "lr": 0.002,
            "warmup": 100,
            "ema_decay": 0.995,
            "sampler": "ddim",
            "sample_steps": 25,
        },
        "generations": 3,
        "generations_augmented": 5,
        "n_initial": 1297,
        "n_real": 1297,
        "n_synthetic": 1297,
        "n_metric": 500,
        "biases": [1.0, 0.5],
        "accumulate": False,
        "check_sample_steps": 50,
        "null_chains": 2000,
        "grid": 40,
    },
    "04": {
        "curves": {
            "dim": 100,
            "n_real": 100,
            "n_synthetic": 900,
            "n_initial": [100, 1000],
            "biases": [1.0, 0.8],
            "generations": 50,
            "chains": 200,
            "reference_chains": 40,
        },
        "forgetting": {
            "dim": 10,
            "n_real": 10,
            "n_synthetic": [10, 30, 90],
            "offset": 3.0,
            "chains": 4000,
        },
        "weight": {"n": 50, "chains": 4000, "step": 0.01},
        "maps": {
            "dim": 10,
            "points": 13,
            "biases": [0.7, 0.85, 1.0],
            "bias_grid": [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0],
            "rows": [100, 250, 1000],
            "chains": 64,
            "reference_chains": 4000,
        },
        "images": {
            "dataset": "digits",
            "generations": 3,
            "n_real": 200,
            "n_synthetic": 200,
            "n_initial": 1297,
            "bias": 0.5,
            "n_metric": 500,
            "ddpm": {"steps": 300},
        },
        "toy": {
            "name": "moons",
            "generations": 6,
            "n_real": 500,
            "n_synthetic": 500,
            "n_initial": [50, 2000],
            "n_test": 1000,
            "flow": {
                "hidden": 64,
                "layers": 3,
                "steps": 2000,
                "batch_size": 256,
                "lr": 0.002,
                "sample_steps": 50,
            },
        },
        "grid": 20,
    },
    "05": {
        "toy": "moons",
        "toy_flow": {
            "hidden": 64,
            "layers": 3,
            "steps": 3000,
            "batch_size": 256,
            "lr": 0.002,
            "sampler": "heun",
            "sample_steps": 25,
        },
        "toy_reflow": {
            "rounds": 3,
            "n_real": 1000,
            "n_pairs": 1000,
            "train_steps": 1000,
            "pair_steps": 8,
            "pair_method": "heun",
            "real_ratio": 0.5,
            "init": "finetune",
            "n_eval": 1000,
        },
        "toy_test": 1000,
        "digits_flow": {
            "width": 32,
            "mults": [1, 2],
            "blocks": 1,
            "steps": 800,
            "batch_size": 64,
            "lr": 0.002,
            "ema_decay": 0.995,
            "sampler": "heun",
            "sample_steps": 8,
        },
        "digits_reflow": {
            "rounds": 2,
            "n_real": 1297,
            "n_pairs": 1297,
            "train_steps": 150,
            "pair_steps": 8,
            "pair_method": "heun",
            "real_ratio": 0.5,
            "init": "finetune",
            "n_eval": 500,
        },
        "steps_grid": [1, 2, 4, 8],
        "solver_grid": {"euler": [16], "heun": [4, 8, 32]},
        "straight_steps": 16,
        "dae": {
            "eigenvalues": [4.0, 2.0, 1.0, 0.5],
            "sigma2": 1.0,
            "generations": 12,
            "n": 100_000,
            "real_fraction": 0.2,
        },
        "grid": 36,
        "trajectories": 80,
    },
    "06": {
        "context": 16,
        "length": 64,
        "max_windows": None,
        "d_model": 128,
        "layers": 2,
        "heads": 4,
        "batch_size": 32,
        "lr": 0.003,
        "dropout": 0.0,
        "epochs_pretrain": 14,
        "epochs": 1,
        "decoding": "top_p",
        "bias": 0.9,
        "generations": 6,
        "ngram_order": 3,
        "ngram_bias": 1.0,
        "ngram_generations": 6,
        "score_windows": 600,
        "zipf_items": 200_000,
        "zipf_repeats": 50,
    },
    "07": {
        "dataset": "digits",
        "n_initial": 1297,
        "n_synthetic": 1297,
        "generations": 4,
        "bias": 0.75,
        "n_metric": 500,
        "grid": 24,
        "wgan_gp": {"width": 16, "lr": 0.0005, "ema_decay": 0.99, "steps": 150},
        "flow": {"steps": 500},
        "vae": {"steps": 2000},
        "gmm": {"reg": 0.001, "clip": [-1.0, 1.0]},
        "toy": {  # MAD's GLOW on a 2-D Rosenbrock-like density
            "name": "rosenbrock",
            "generations": 8,
            "null_generations": 2,
            "n": 2000,
            "n_eval": 10_000,
            "flow": {
                "depth": 8,
                "hidden": 64,
                "steps": 150,
                "batch_size": 256,
                "lr": 0.005,
                "warmup": 20,
            },
        },
    },
    "08": {
        "dataset": "digits",
        "n_initial": 1297,
        "n_synthetic": 1297,
        "n_real_fresh": 600,  # fresh real items per generation, as many as synthetic (MAD 5)
        "n_real_mixed": 300,  # real items in the unlabelled pool of the curated loops
        "n_synthetic_mixed": 900,
        "generations": 4,
        "bias": 0.75,
        "n_metric": 500,
        "folds": 5,
        "vae": {"steps": 900, "lr": 0.002},  # 16 ms a step on one idle core: 14 s a fit
        # recall starts near 0.2 for these one-minute VAEs and is too noisy at n = 500 to judge by a
        # ratio; the thresholds of the monitors come from a one-seed pilot (seed 0)
        "rule": {"fid_factor": 3.0, "recall_factor": None},
        "warn": {"entropy": -40.0, "detector_auc": 0.005, "precision": 0.7, "min_class_share": 0.5},
        "weight_decay": 0.1,
        "dropout": 0.2,
        "members": 2,  # at equal training compute: each member takes steps / members
        "shift": 1,
        "correction": {"strength": 0.5, "centres": 6},
        "curation": {"threshold": 0.5, "beta": 2.0},
        "rare_class": 9,
        "rare_fraction": 0.2,
    },
}

# What ``ci`` and ``gpu`` change, merged into ``_CPU`` key by key (nested tables too).
_OVERRIDES: dict[str, dict[str, dict]] = {
    "ci": {
        "01": {
            "chains_1d": 2000,
            "generations_1d": 200,
            "chains_table": 20_000,
            "chains_d": 300,
            "generations_d": 60,
            "long_generations_d": 600,
            "chains_pool": 300,
            "generations_pool": 60,
            "chains_regression": 500,
            "chains_ratio": 300,
            "generations_ratio": 60,
            "chains_check": 2000,
        },
        "02": {
            "channels": 16,
            "z_dim": 32,
            "steps": 60,
            "lr": 0.0025,
            "ema_images": 2000,
            "generations": 2,
            "n_synthetic": 300,
            "n_eval": 300,
            "grid": 16,
            "fid_bound": 20.0,
        },
        "03": {
            "ddpm": {
                "width": 16,
                "timesteps": 100,
                "steps": 40,
                "batch_size": 32,
                "warmup": 10,
                "ema_decay": 0.99,
                "sample_steps": 5,
            },
            "generations": 2,
            "generations_augmented": 3,
            "n_synthetic": 200,
            "n_metric": 200,
            "check_sample_steps": 10,
            "null_chains": 200,
            "grid": 20,
        },
        "04": {
            "curves": {
                "dim": 10,
                "n_real": 10,
                "n_synthetic": 90,
                "n_initial": [5, 100],
                "generations": 12,
                "chains": 40,
                "reference_chains": 20,
            },
            "forgetting": {"chains": 1000},
            "weight": {"chains": 1000},
            "maps": {
                "dim": 3,
                "points": 3,
                "biases": [0.7, 1.0],
                "bias_grid": [0.7, 1.0],
                "rows": [100, 1000],
                "chains": 8,
                "reference_chains": 400,
            },
            "images": {
                "generations": 2,
                "n_real": 100,
                "n_synthetic": 100,
                "n_initial": 300,
                "n_metric": 100,
                "ddpm": {"steps": 40},
            },
            "toy": {
                "generations": 2,
                "n_real": 200,
                "n_synthetic": 200,
                "n_initial": [50, 1000],
                "n_test": 300,
                "flow": {
                    "hidden": 32,
                    "layers": 2,
                    "steps": 100,
                    "batch_size": 128,
                    "sample_steps": 8,
                },
            },
            "grid": 16,
        },
        "05": {
            "toy_flow": {
                "hidden": 32,
                "layers": 2,
                "steps": 150,
                "batch_size": 128,
                "lr": 0.003,
                "sample_steps": 4,
            },
            "toy_reflow": {
                "rounds": 2,
                "n_real": 500,
                "n_pairs": 500,
                "train_steps": 60,
                "pair_steps": 4,
                "n_eval": 300,
            },
            "toy_test": 300,
            "digits_flow": {
                "width": 8,
                "steps": 20,
                "batch_size": 32,
                "ema_decay": 0.9,
                "sample_steps": 2,
            },
            "digits_reflow": {
                "rounds": 1,
                "n_pairs": 200,
                "train_steps": 10,
                "pair_steps": 2,
                "n_eval": 200,
            },
            "steps_grid": [1, 2, 4],
            "solver_grid": {"euler": [2, 4], "heun": [2]},
            "dae": {
                "generations": 8,
                "n": 5000,
            },
            "grid": 16,
            "trajectories": 40,
        },
        "06": {
            "max_windows": 160,
            "d_model": 32,
            "layers": 1,
            "heads": 2,
            "epochs_pretrain": 4,
            "epochs": 1,
            "generations": 3,
            "ngram_generations": 3,
            "score_windows": 160,
            "zipf_items": 100_000,
            "zipf_repeats": 20,
        },
        "07": {
            "n_initial": 300,
            "n_synthetic": 300,
            "generations": 2,
            "n_metric": 200,
            "grid": 12,
            "wgan_gp": {"width": 8, "z_dim": 8, "steps": 3, "batch_size": 32},
            "flow": {"depth": 1, "hidden": 8, "steps": 5, "batch_size": 32, "warmup": 2},
            "vae": {"width": 8, "hidden": 32, "steps": 20, "batch_size": 32},
            "toy": {
                "generations": 2,
                "n": 200,
                "n_eval": 500,
                "flow": {"depth": 2, "hidden": 8, "steps": 5, "batch_size": 64, "warmup": 2},
            },
        },
        "08": {
            "n_initial": 300,
            "n_synthetic": 300,
            "n_real_fresh": 100,
            "n_real_mixed": 100,
            "n_synthetic_mixed": 200,
            "generations": 2,
            "n_metric": 200,
            "folds": 3,
            "vae": {"width": 8, "hidden": 32, "steps": 20, "batch_size": 32},
            "members": 2,
            "correction": {"centres": 4},
        },
    },
    "gpu": {
        "01": {
            "chains_1d": 20_000,
            "generations_1d": 5000,
            "chains_table": 2_000_000,
            "chains_d": 10_000,
            "generations_d": 500,
            "long_generations_d": 5000,
            "generations_pool": 400,
            "chains_regression": 100_000,
            "chains_ratio": 10_000,
            "generations_ratio": 500,
            "chains_check": 50_000,
        },
        "02": {
            "dataset": "mnist",
            "pad": 2,
            "resolution": 32,
            "channels": 128,
            "z_dim": 128,
            "steps": 12_000,
            "batch": 64,
            "lr": 0.0025,
            "augment": "none",
            "generations": 6,
            "n_initial": 60_000,
            "n_synthetic": 60_000,
            "n_eval": 10_000,
            "fid_bound": 20.0,
        },
        "03": {
            "dataset": "mnist",
            "ddpm": {
                "width": 64,
                "mults": [1, 2, 2],
                "blocks": 2,
                "steps": 8000,
                "batch_size": 128,
                "lr": 0.0005,
                "warmup": 500,
                "ema_decay": 0.999,
                "sample_steps": 100,
            },
            "n_initial": 60_000,
            "n_real": 60_000,
            "n_synthetic": 20_000,
            "n_metric": 5000,
            "generations": 5,
            "generations_augmented": 10,
            "biases": [1.0, 0.8, 0.5],
            "accumulate": True,
            "check_sample_steps": 250,
        },
        "04": {
            "curves": {
                "generations": 80,
                "chains": 1000,
            },
            "maps": {
                "dim": 20,
                "points": 17,
                "chains": 128,
                "reference_chains": 20_000,
            },
            "images": {
                "dataset": "mnist",
                "generations": 12,
                "n_real": 2000,
                "n_synthetic": 2000,
                "n_initial": 3000,
                "n_metric": 2000,
                "ddpm": {"steps": 8000},
            },
            "toy": {
                "generations": 20,
                "n_real": 1000,
                "n_synthetic": 1000,
                "n_initial": [50, 5000],
                "n_test": 2000,
                "flow": {
                    "hidden": 128,
                    "steps": 6000,
                    "sample_steps": 100,
                },
            },
            "grid": 40,
        },
        "05": {
            "toy_flow": {
                "hidden": 256,
                "steps": 10_000,
                "batch_size": 512,
                "lr": 0.001,
                "sample_steps": 50,
            },
            "toy_reflow": {
                "rounds": 8,
                "n_real": 10_000,
                "n_pairs": 10_000,
                "train_steps": 2000,
                "pair_steps": 50,
                "n_eval": 2000,
            },
            "toy_test": 2000,
            "digits_flow": {
                "width": 64,
                "blocks": 2,
                "steps": 8000,
                "batch_size": 128,
                "lr": 0.0005,
                "ema_decay": 0.999,
                "sample_steps": 50,
            },
            "digits_reflow": {
                "rounds": 6,
                "n_pairs": 10_000,
                "train_steps": 3000,
                "pair_steps": 50,
                "n_eval": 1000,
            },
            "steps_grid": [1, 2, 4, 8, 16, 32],
            "dae": {
                "n": 1_000_000,
            },
            "trajectories": 100,
        },
        "06": {
            "d_model": 256,
            "layers": 4,
            "heads": 8,
            "lr": 0.001,
            "epochs_pretrain": 20,
            "epochs": 5,
            "decoding": "beam",
            "bias": 1.0,
            "generations": 10,
            "ngram_generations": 10,
            "score_windows": 1470,
            "zipf_items": 1_000_000,
            "zipf_repeats": 100,
        },
        "07": {
            "dataset": "mnist",
            "n_initial": 60_000,
            "n_synthetic": 60_000,
            "generations": 5,
            "n_metric": 2000,
            "wgan_gp": {"width": 64, "z_dim": 64, "lr": 0.0001, "ema_decay": 0.0, "steps": 20_000},
            "flow": {"depth": 12, "hidden": 128, "bins": 256, "steps": 20_000, "lr": 0.001},
            "vae": {"latent": 20, "width": 64, "hidden": 512, "steps": 20_000},
            "toy": {
                "generations": 16,
                "null_generations": 16,
                "n": 10_000,
                "n_eval": 50_000,
                "flow": {"steps": 3000, "batch_size": 512, "lr": 0.002, "warmup": 100},
            },
        },
        "08": {
            "generations": 6,
            "vae": {"steps": 4000, "lr": 0.001},
        },
    },
}

_TABLES = _CPU  # the notebooks that have profiles


def notebook_key(notebook: str) -> str:
    """'01', '1', '01_gaussian_theory' or 'notebooks/01_gaussian_theory.ipynb' -> '01'."""
    stem = Path(str(notebook)).stem
    digits = stem.split("_", 1)[0]
    key = digits.zfill(2) if digits.isdigit() else stem
    if key not in _TABLES:
        known = ", ".join(sorted(_TABLES))
        raise ValueError(
            f"notebook must be one of {known} (or a file name starting with one); got {notebook!r}"
        )
    return key


def figures_dir(profile: str) -> Path:
    """Committed figures are the ``cpu`` profile's; ``ci`` runs write under build/ instead."""
    check_choice("profile", profile, PROFILES)
    return paths.BUILD / "figures" / "ci" if profile == "ci" else paths.FIGURES


def resolve(notebook: str, profile: str) -> dict:
    """The plain dict of sizes for one notebook at one profile, plus ``profile``, ``figures_dir`` and
    ``n_seeds`` (how many seeds a trained-model curve runs; see ``seeds.run_seeds``)."""
    check_choice("profile", profile, PROFILES)
    key = notebook_key(notebook)
    sizes = _merge(_CPU[key], _OVERRIDES.get(profile, {}).get(key, {}))
    if key == "04":  # notebook 04's image loop uses notebook 03's DDPM, with its own overrides
        sizes["images"]["ddpm"] = resolve("03", profile)["ddpm"] | sizes["images"].get("ddpm", {})
    sizes.update(profile=profile, figures_dir=figures_dir(profile), n_seeds=SEEDS[profile])
    return sizes


def _merge(base: dict, override: dict) -> dict:
    """A deep copy of ``base`` with ``override`` merged in (nested tables key by key), so no caller
    can change the tables through what ``resolve`` returned."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = (
            _merge(out[k], v)
            if isinstance(v, dict) and isinstance(out.get(k), dict)
            else copy.deepcopy(v)
        )
    return out
