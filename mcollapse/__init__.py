"""mcollapse: a reproducible companion to the research on model collapse.

Modules: ``gaussian`` (exact Gaussian loops and closed forms), ``profiles`` (sizes per notebook and
profile), ``plotting`` (style and ``save_figure``), ``seeds`` (named random streams),
``claims`` (the claims cell), ``notebooks`` and ``cli`` (headless runs).
"""

__version__ = "0.1.0"
