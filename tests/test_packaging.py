"""environment.yml and pyproject.toml describe the same environment; committed notebooks are clean."""

import tomllib

import yaml

from mcollapse import notebooks, paths


def load_pyproject():
    return tomllib.loads((paths.ROOT / "pyproject.toml").read_text())


def test_environment_yml_is_valid_and_installs_the_project_from_pyproject():
    env = yaml.safe_load((paths.ROOT / "environment.yml").read_text())
    assert env["name"] == "mcollapse"
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    minimum = load_pyproject()["project"]["requires-python"].removeprefix(">=")
    assert python == [f"python>={minimum}"]
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    # every extra but the peer libraries, which `make bench-peers` keeps in a venv of their own
    extras = set(load_pyproject()["project"]["optional-dependencies"]) - {"peers"}
    assert pip_section == [f'-e ".[{",".join(sorted(extras))}]"']


def test_torch_pair_and_metrics_library_are_pinned():
    deps = load_pyproject()["project"]["dependencies"]
    pinned = {d.split("==")[0]: d.split("==")[1] for d in deps if "==" in d}
    assert pinned["torch"] == "2.15.0"
    assert pinned["torchvision"] == "0.29.2"
    assert "torch-fidelity" in pinned


def test_committed_notebooks_carry_no_outputs_and_have_a_parameters_cell():
    found = notebooks.find()
    assert found, "no notebooks found"
    for nb in found:
        assert not notebooks.has_outputs(nb), nb.name
        import json

        cells = json.loads(nb.read_text())["cells"]
        assert cells[0]["cell_type"] == "markdown", f"{nb.name}: first cell must say what it shows"
        assert "parameters" in cells[1]["metadata"].get("tags", []), f"{nb.name}: parameters cell"
        assert 'profile = "cpu"' in "".join(cells[1]["source"])
