"""Command line: ``python -m mcollapse figures|prepare|book|gaussian ...``.

Bad parameters end with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import gaussian, notebooks, paths, site
from ._checks import check_choice
from .profiles import PROFILES


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as exc:
        print(f"mcollapse: error: {exc}", file=sys.stderr)
        return 2


def _figures(args) -> int:
    check_choice("profile", args.profile, PROFILES)
    selected = notebooks.find(args.notebooks)
    if not selected:
        print(f"mcollapse: error: no notebooks found in {paths.NOTEBOOKS}", file=sys.stderr)
        return 2
    results = []
    for nb in selected:
        print(f"running {nb.name} at profile {args.profile} ...", flush=True)
        result = notebooks.execute(nb, args.profile)
        results.append(result)
        status = "ok" if result.ok else f"FAILED at {result.error}"
        print(f"  {status} ({result.seconds:.0f} s) -> {result.output}", flush=True)
    failed = [r for r in results if not r.ok]
    total = sum(r.seconds for r in results)
    print(f"{len(results) - len(failed)} ok, {len(failed)} failed, {total:.0f} s in all")
    return 1 if failed else 0


def _prepare(args) -> int:
    check_choice("profile", args.profile, PROFILES)
    for nb in notebooks.find(args.notebooks):
        print(notebooks.prepare(nb, args.profile, args.out))
    return 0


def _book(args) -> int:
    built = site.build(args.profile, out=args.out)
    print(f"{len(built.pages)} notebook pages and index.html -> {built.out}")
    if built.missing:
        print(
            f"not executed at profile {args.profile} (listed, no page): {', '.join(built.missing)}"
        )
    if built.without_figures:
        names = ", ".join(built.without_figures)
        print(
            f"mcollapse: warning: no figures in {names} (run with MPLBACKEND=Agg?)", file=sys.stderr
        )
    return 0


def _gaussian(args) -> int:
    """Run MAD's fully synthetic Gaussian loop and print simulation next to the closed forms."""
    run = gaussian.simulate_fully_synthetic(
        args.dim, args.n_samples, args.generations, args.chains, args.seed, bias=args.bias, w2=False
    )
    print(f"{'generation':>10} {'E tr S/tr S0':>13} {'theory':>9} {'E log det':>11} {'theory':>9}")
    for t in range(args.generations + 1):
        tr = np.exp(run["log_trace"][:, t]).mean() / args.dim
        ld = run["log_det"][:, t].mean()
        tr_th = gaussian.expected_trace_ratio(t, args.bias)
        ld_th = gaussian.expected_log_det(t, args.dim, args.n_samples, args.bias)
        print(f"{t:>10} {tr:>13.4g} {tr_th:>9.4g} {ld:>11.4g} {ld_th:>9.4g}")
    return 0


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2, like a ValueError."""

    def error(self, message):
        self.exit(2, f"mcollapse: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="mcollapse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True, metavar="command", parser_class=_OneLineParser)

    fig = sub.add_parser("figures", help="execute notebooks headless and rebuild their figures")
    fig.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    fig.add_argument(
        "--notebooks", nargs="*", default=None, help="numbers, e.g. 01 03 (default: all)"
    )
    fig.set_defaults(handler=_figures)

    prep = sub.add_parser(
        "prepare", help="write copies with the profile injected, unexecuted (nbval)"
    )
    prep.add_argument("--profile", default="ci")
    prep.add_argument("--notebooks", nargs="*", default=None)
    prep.add_argument("--out", default=str(paths.BUILD / "nbval"))
    prep.set_defaults(handler=_prepare)

    book = sub.add_parser("book", help="the static companion site from the executed notebooks")
    book.add_argument("--profile", default="cpu", help="whose executed notebooks (default cpu)")
    book.add_argument("--out", default=str(paths.BUILD / "site"))
    book.set_defaults(handler=_book)

    gau = sub.add_parser(
        "gaussian", help="simulate MAD's Gaussian loop and print it next to theory"
    )
    gau.add_argument("--dim", type=int, default=10)
    gau.add_argument("--n-samples", type=int, default=100)
    gau.add_argument("--generations", type=int, default=10)
    gau.add_argument("--bias", type=float, default=1.0, help="sampling bias lambda in (0, 1]")
    gau.add_argument("--chains", type=int, default=1000)
    gau.add_argument("--seed", type=int, default=0)
    gau.set_defaults(handler=_gaussian)
    return parser


if __name__ == "__main__":
    sys.exit(main())
