# The README's commands. Each one creates .venv if needed and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
# `make test`, `make test-long` and `make quick` run the tests on this many pytest-xdist worker processes, one
# per core here (`make test TEST_WORKERS=0`: in pytest's own process, as plain `pytest` does). Each file runs
# whole on one worker and the browser files together on one (tests/conftest.py), so their shared server
# starts once. `make test` leaves out the measurements (marker `long`); `make test-long` runs only them.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: run test test-long quick bench bench-full lint format clean demo hosted

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# requirements.txt pins tensorflow-cpu on Linux x86-64. A venv that already has the `tensorflow`
# distribution (e.g. tensorflow[and-cuda] for a GPU, README "GPU") keeps it: pip gets the list
# without the tensorflow-cpu line, so the CPU wheel is never installed beside or over it.
# Then sharecore itself, editable (--no-deps: requirements.txt has pinned what it needs), so that
# `import sharecore` and the `sharecore` command work from any folder, as the README shows.
$(VENV)/.installed: requirements.txt pyproject.toml $(BIN)/python
	@tf=$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("tensorflow"))' 2>/dev/null); \
	req=requirements.txt; \
	if [ -n "$$tf" ]; then \
		echo "make: keeping the tensorflow $$tf installed in $(VENV); not installing tensorflow-cpu"; \
		req=$(VENV)/requirements-keep-tf.txt; \
		grep -v '^tensorflow-cpu' requirements.txt > "$$req"; \
	fi; \
	echo "$(BIN)/python -m pip install --quiet -r $$req"; \
	$(BIN)/python -m pip install --quiet -r "$$req"
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	touch $@

# The dev tools only: requirements-dev.txt's `-r requirements.txt` is what the rule above installs.
$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	grep -v '^-r ' requirements-dev.txt > $(VENV)/requirements-dev-only.txt
	$(BIN)/python -m pip install --quiet -r $(VENV)/requirements-dev-only.txt
	touch $@

run: $(VENV)/.installed
	$(BIN)/python -m streamlit run streamlit_app.py --server.port $(PORT)

# The hosted-demo profile without Docker (README "Hosting a demo"): each KEY=VALUE line of
# $(HOSTED_ENV) joins the environment, unless the variable is set already (`SHARECORE_MAX_STEPS=5000
# make hosted` raises one cap, as `docker run -e` does), then the app starts as `make run` starts it.
# Several processes on one machine: `make hosted PORT=8502` beside `make hosted`; they share the run
# store in $$SHARECORE_DATA_DIR (or $$SHARECORE_DATABASE_URL), README "Several processes behind one address".
HOSTED_ENV ?= deploy/hosted-demo.env
hosted: $(VENV)/.installed
	@echo "make hosted: the hosted-demo profile ($(HOSTED_ENV)) on http://localhost:$(PORT) (Ctrl-C stops it)"
	@while IFS= read -r line || [ -n "$$line" ]; do \
		case "$$line" in ''|'#'*) continue ;; esac; \
		name=$${line%%=*}; \
		if [ -z "$$(printenv "$$name")" ]; then export "$$line"; fi; \
	done < $(HOSTED_ENV); \
	exec $(BIN)/python -m streamlit run streamlit_app.py --server.port $(PORT)

# The hosted demo in a container (Dockerfile; README "Hosting a demo"), where Docker runs; without
# Docker, the same profile as a plain process (`make hosted`).
demo:
	@if docker info >/dev/null 2>&1; then \
		echo "docker build -t sharecore-demo ." && docker build -t sharecore-demo . && \
		echo "sharecore demo on http://localhost:$(PORT) (Ctrl-C stops it)" && \
		echo "docker run --rm -p $(PORT):8501 sharecore-demo" && exec docker run --rm -p $(PORT):8501 sharecore-demo; \
	else \
		echo "make demo: no Docker here (docker info failed: no Docker, or its daemon is not running), so the hosted profile runs without it: make hosted" >&2; \
		exec make --no-print-directory hosted; \
	fi

# The examples in the public docstrings (the README's functions) run as doctests with the tests.
DOCTESTS = sharecore/core sharecore/nn/model.py sharecore/nn/equivariance.py sharecore/nn/training.py sharecore/nn/tensorboard.py sharecore/nn/inspect.py sharecore/nn/monitor.py

test: $(VENV)/.installed-dev
	$(BIN)/python -m ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not long" --doctest-modules tests $(DOCTESTS)

# The measurements (the 12-tab workshop load test, the 30-run soak, bench's fresh-process sections,
# `pip install .` in a new venv), then the numeric claims on both kinds of CPU kernels: oneDNN on
# (the default on some CPUs, where float sums run in another order) and off.
NUMERIC_CLAIMS = tests/teach/test_exercises.py tests/nn/test_properties.py tests/nn/test_build.py tests/runs/test_diagnose.py
test-long: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m long
	TF_ENABLE_ONEDNN_OPTS=1 $(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not browser" $(NUMERIC_CLAIMS)
	TF_ENABLE_ONEDNN_OPTS=0 $(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not browser" $(NUMERIC_CLAIMS)

quick: $(VENV)/.installed-dev
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) -m "not browser and not slow and not long"

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench --quick

bench-full: $(VENV)/.installed-dev
	$(BIN)/python -m bench

lint: $(VENV)/.installed-dev
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m mypy

format: $(VENV)/.installed-dev
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
