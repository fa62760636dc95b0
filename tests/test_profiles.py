"""Profiles resolve to plain dicts of sizes; unknown names fail with a clear message."""

import pytest

from mcollapse import paths, profiles

NOTEBOOKS = sorted(profiles._TABLES)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_profile_resolves_with_the_same_keys(notebook):
    keys = {p: set(profiles.resolve(notebook, p)) for p in profiles.PROFILES}
    assert keys["ci"] == keys["cpu"] == keys["gpu"]
    assert {"profile", "figures_dir"} <= keys["cpu"]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_profiles_grow_from_ci_to_gpu(notebook):
    ci, cpu, gpu = (profiles.resolve(notebook, p) for p in ("ci", "cpu", "gpu"))
    for key, value in cpu.items():
        if isinstance(value, int) and not isinstance(value, bool):
            assert ci[key] <= value <= gpu[key], key


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_profile_table_has_its_notebook(notebook):
    assert list(paths.NOTEBOOKS.glob(f"{notebook}_*.ipynb")), f"no notebook for table {notebook}"


def test_notebook_names_are_accepted_in_several_forms():
    forms = ["01", "1", "01_gaussian_theory", "notebooks/01_gaussian_theory.ipynb"]
    assert {profiles.notebook_key(f) for f in forms} == {"01"}


def test_ci_figures_never_overwrite_the_committed_ones():
    assert profiles.resolve("01", "ci")["figures_dir"] != paths.FIGURES
    assert profiles.resolve("01", "cpu")["figures_dir"] == paths.FIGURES


@pytest.mark.parametrize("bad", ["CPU", "fast", "", None])
def test_unknown_profile_names_the_parameter_and_the_choices(bad):
    with pytest.raises(ValueError, match=r"profile must be one of 'ci', 'cpu', 'gpu'"):
        profiles.resolve("01", bad)


def test_unknown_notebook_is_a_clear_error():
    with pytest.raises(ValueError, match="notebook must be one of 01"):
        profiles.resolve("99", "cpu")


def test_resolve_returns_a_deep_copy_and_overrides_only_what_they_name():
    first = profiles.resolve("03", "cpu")
    first["ddpm"]["width"] = -1
    assert profiles.resolve("03", "cpu")["ddpm"]["width"] > 0
    ci, cpu = profiles.resolve("03", "ci"), profiles.resolve("03", "cpu")
    assert ci["ddpm"]["steps"] < cpu["ddpm"]["steps"]  # an override inside a nested table
    assert ci["ddpm"]["schedule"] == cpu["ddpm"]["schedule"]  # the rest comes from cpu
    assert profiles.resolve("04", "ci")["images"]["ddpm"] == ci["ddpm"]
