# mcollapse: `make figures` rebuilds every figure, `make test` runs the checks CI runs.
# Both install into .venv first when needed, so either works as the first command on a fresh clone.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu
NOTEBOOKS ?=

# Kernels from the project's environment take precedence over user-wide ones. No MPLBACKEND here:
# kernels must keep their inline backend so that executed notebooks (and the site) show figures.
export JUPYTER_PREFER_ENV_PATH := 1

# pytest exits 5 when it collected nothing: say so and fail instead of passing silently.
define pytest_strict
	$(PY) -m pytest $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests in '$(1)' (exit 5): failing"; exit 1; fi; \
	exit $$rc
endef

.PHONY: help install figures test lint check-notebooks unit nbval lab bench bench-peers strip clean book

help:
	@echo "make figures [PROFILE=ci|cpu|gpu] [NOTEBOOKS='01 02']  run notebooks headless, rebuild figures/"
	@echo "make test       lint, notebooks without outputs, unit tests, every notebook at profile ci"
	@echo "make lab        JupyterLab on notebooks/ with the project's kernel"
	@echo "make book [PROFILE=ci|cpu|gpu]  static offline site in build/site/ from the notebooks make figures ran"
	@echo "make bench      timings (Gaussian samplers and maps, feature network, metrics, models)"
	@echo "make bench-peers  our DDPM and rectified flow against peer libraries: quality per CPU-second"
	@echo "make strip      remove outputs from committed notebooks"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mcollapse)"
	touch $@

figures: install
	$(PY) -m mcollapse figures --profile $(PROFILE) $(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS))

test: lint check-notebooks unit nbval

lint: install
	$(VENV)/bin/ruff check mcollapse tests benchmarks notebooks
	$(VENV)/bin/ruff format --check mcollapse tests benchmarks

check-notebooks: install
	@$(VENV)/bin/nbstripout --verify notebooks/*.ipynb \
	  || { echo "error: committed notebooks must carry no outputs: run 'make strip'"; exit 1; }
	@echo "notebooks carry no outputs"

unit: install
	$(call pytest_strict,tests)

nbval: install
	rm -rf build/nbval
	$(PY) -m mcollapse prepare --profile ci --out build/nbval
	$(call pytest_strict,--nbval-lax --nbval-current-env -p no:cacheprovider build/nbval)

# JupyterLab refuses to run as root without --allow-root (containers often run as root).
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)
lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

# The companion site: the executed notebooks of build/notebooks/$(PROFILE)/ as offline HTML pages.
book: install
	$(PY) -m mcollapse book --profile $(PROFILE)

bench: install
	$(PY) benchmarks/bench_gaussian.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_loops.py
	$(PY) benchmarks/bench_ddpm.py
	$(PY) benchmarks/bench_stylegan2.py
	$(PY) benchmarks/bench_text.py
	$(PY) benchmarks/bench_rectified_flow.py
	$(PY) benchmarks/bench_fresh.py
	$(PY) benchmarks/bench_sweep.py

# The peer libraries live in a venv of their own (.venv-peers) that sees the project's packages
# through a .pth file, so they add what they need without changing the notebooks' environment.
PEERS := $(VENV)-peers
PEERS_STAMP := $(PEERS)/.installed

$(PEERS_STAMP): $(STAMP) pyproject.toml
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -c "import pathlib, site, sys; pathlib.Path(site.getsitepackages()[0], \
	  'mcollapse-base.pth').write_text(sys.argv[1] + '\n')" "$$($(PY) -c 'import site; print(site.getsitepackages()[0])')"
	$(PEERS)/bin/python -m pip install --quiet --progress-bar off -e '.[peers]'
	touch $@

bench-peers: $(PEERS_STAMP)
	$(PEERS)/bin/python benchmarks/bench_peers.py $(BENCH_ARGS)

strip: install
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:
	rm -rf build .pytest_cache .ruff_cache
