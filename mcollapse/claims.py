"""The claims cell: each notebook ends by asserting its headline results on the numbers it computed.

Each check prints PASS or FAIL with the numbers behind it, so a reader sees every claim, and
``assert_all`` then fails the notebook (and CI) if any did not hold.
"""

from __future__ import annotations

import numpy as np


class Claims:
    """An ordered list of checked claims."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []

    def check(self, text: str, ok) -> bool:
        """Record a claim and whether it holds."""
        ok = bool(ok)
        self.results.append((text, ok))
        print(("PASS  " if ok else "FAIL  ") + text)
        return ok

    def mean_matches(self, text: str, samples, expected: float, n_se: float = 4.0) -> bool:
        """Claim that the mean of ``samples`` is within ``n_se`` standard errors of ``expected``."""
        samples = np.asarray(samples, dtype=float)
        mean = samples.mean()
        se = samples.std(ddof=1) / np.sqrt(samples.size)
        detail = f" (simulation {mean:.4g} ± {se:.2g}, theory {float(expected):.4g})"
        return self.check(text + detail, abs(mean - expected) < n_se * se)

    @property
    def failed(self) -> list[str]:
        return [text for text, ok in self.results if not ok]

    def assert_all(self) -> None:
        """Print the tally; raise AssertionError naming every claim that failed."""
        print(f"\n{len(self.results) - len(self.failed)} / {len(self.results)} claims hold")
        if not self.results:
            raise AssertionError("no claims were checked")
        if self.failed:
            raise AssertionError("claims that failed:\n" + "\n".join(self.failed))
