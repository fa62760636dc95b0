"""Figures are citable and traceable: every PNG, PDF and CSV says what made it."""

import json
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from mcollapse import paths, plotting  # noqa: E402


def _figure():
    fig, ax = plt.subplots()
    ax.plot(np.arange(3), np.arange(3))
    return fig


def _head() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True)
    return head.stdout.decode().strip() if head.returncode == 0 else "unknown"


def test_png_pdf_and_csv_carry_commit_profile_seeds_and_versions(tmp_path):
    fig = _figure()
    out = plotting.save_figure(fig, "01_demo", {"x": [0, 1]}, tmp_path, profile="cpu", seeds=[7])
    plt.close(fig)
    png = json.loads(Image.open(out["png"]).text["mcollapse"])
    pdf = json.loads(PdfReader(out["pdf"]).metadata["/Subject"])
    sidecar = json.loads((tmp_path / "01_demo.csv.meta.json").read_text())
    assert png == pdf == sidecar
    assert png["figure"] == "01_demo" and png["profile"] == "cpu" and png["seeds"] == [7]
    assert png["commit"].removesuffix("-dirty") == _head()
    versions = png["versions"]
    assert versions["numpy"] == np.__version__
    assert set(versions) >= {"torch", "numpy", "torch-fidelity"}
    assert all(v and v != "not installed" for v in versions.values())
    assert out["csv"].read_text().splitlines()[0] == "x", "the CSV itself stays a plain table"


def test_profile_and_seed_default_to_the_calling_notebooks_parameters(tmp_path):
    namespace = {"plotting": plotting, "fig": _figure(), "where": tmp_path}
    namespace.update(profile="ci", seed=2024)  # what a notebook's parameters cell defines
    exec("out = plotting.save_figure(fig, 'nb', None, where)", namespace)
    stamp = json.loads(Image.open(namespace["out"]["png"]).text["mcollapse"])
    assert stamp["profile"] == "ci" and stamp["seeds"] == {"seed": 2024}
    assert "csv_meta" not in namespace["out"], "no table, no CSV, no sidecar"


def test_without_parameters_the_profile_comes_from_the_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BUILD", tmp_path)
    ci, elsewhere = tmp_path / "figures" / "ci", tmp_path / "other"
    for directory, expected in ((ci, "ci"), (elsewhere, "unknown")):
        out = plotting.save_figure(_figure(), "f", None, directory)
        stamp = json.loads(Image.open(out["png"]).text["mcollapse"])
        assert stamp["profile"] == expected and stamp["seeds"] == "unknown"
    plt.close("all")


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    out = plotting.save_figure(_figure(), "f", None, tmp_path)
    plt.close("all")
    assert json.loads(Image.open(out["png"]).text["mcollapse"])["commit"] == "unknown"


@pytest.mark.parametrize(
    "arxiv",
    ["2305.17493", "2307.01850", "2404.01413", "2410.16713", "2310.00429", "2412.08175",
     "2402.07043", "1912.04958", "2006.11239", "2209.03003", "2509.16499", "2502.15654", "2402.07087",
     "2502.18049"],
)  # fmt: skip
def test_citation_file_lists_every_paper_a_notebook_reproduces(arxiv):
    cff = yaml.safe_load((paths.ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["authors"] and cff["title"] and cff["message"]
    matches = [
        ref
        for ref in cff["references"]
        if any(i["value"] == f"arXiv:{arxiv}" for i in ref.get("identifiers", []))
    ]
    assert len(matches) == 1
    assert matches[0]["authors"] and matches[0]["title"] and matches[0]["year"]
