"""The command line: one-line errors with exit code 2, and a working Gaussian simulation."""

import subprocess
import sys

import pytest

from mcollapse import cli


def run_cli(*args):
    """Run ``python -m mcollapse`` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "mcollapse", *args], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("args", "parameter", "allowed"),
    [
        (["figures", "--profile", "laptop"], "profile", "'ci', 'cpu', 'gpu'"),
        (["gaussian", "--generations", "0"], "generations", "[1, inf]"),
        (["gaussian", "--dim", "1", "--n-samples", "1"], "n_samples", "[2, inf]"),
        (["gaussian", "--bias", "0"], "bias", "(0, 1]"),
        (["gaussian", "--bias", "1.2"], "bias", "(0, 1]"),
        (["gaussian", "--dim", "-3"], "dim", "[1, inf]"),
        (["gaussian", "--dim", "10", "--n-samples", "10"], "n_samples", "[11, inf]"),
    ],
)
def test_bad_parameters_give_one_line_and_exit_2(args, parameter, allowed):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mcollapse: error: {parameter} must be")
    assert allowed in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_notebook_number_is_rejected(capsys):
    assert cli.main(["figures", "--notebooks", "42"]) == 2
    assert "notebooks must name existing notebooks" in capsys.readouterr().err


def test_gaussian_command_prints_simulation_next_to_theory(capsys):
    assert cli.main(["gaussian", "--generations", "4", "--chains", "4000", "--bias", "0.5"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.strip().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4]
    for _, trace, trace_theory, log_det, log_det_theory in rows[1:]:
        # E tr S_t = 0.5^(t-1): simulation within 5% of theory; log det within 0.1 nats
        assert float(trace) == pytest.approx(float(trace_theory), rel=0.05)
        assert float(log_det) == pytest.approx(float(log_det_theory), abs=0.1)


@pytest.mark.parametrize(
    "args",
    [["gaussian", "--generations", "many"], ["figures", "--unknown-flag"], ["no-such-command"]],
)
def test_usage_errors_are_one_line_too(args):
    result = run_cli(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("mcollapse: error:")
