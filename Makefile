# The two commands: `make train` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# The exact torch wheel: a CPU build where pip finds one on disk, a CUDA build from PyPI otherwise.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
CONFIG ?= lenet5
# Simply expanded (:=), so `date` runs once and train and report see the same folder;
# `make train RUN=...` (command line or environment) still wins.
ifeq ($(origin RUN),undefined)
RUN := runs/$(shell date +%Y%m%d-%H%M%S)-$(CONFIG)
endif

.PHONY: install train test lint browser bench weights clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[all,dev]"
	touch $@

install: $(BIN)/.installed

train: install
	$(BIN)/lenet data fetch mnist
	$(BIN)/lenet train --config $(CONFIG) --run-dir $(RUN)
	$(BIN)/lenet report $(RUN)

# Style, complexity and imports at the top (ruff), who may import whom (import-linter) and
# types (mypy over src/lenet), all configured in pyproject.toml.
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

# The web app's browser test drives Debian's chromium; install it when we can (CI runs as root).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: /usr/bin/chromium is missing; the browser test will be skipped"

test: lint browser
	$(BIN)/python -m pytest -q

# Speed, side by side in one run: `lenet bench` (training, time to 99 %, peak, inference).
bench: install
	$(BIN)/lenet bench --out runs/bench/bench.json

# The pretrained weights bundled in the package (src/lenet/models/pretrained): each shipped
# recipe with seed 0 on one thread (bit-identical on a given CPU kind), then published with its
# test accuracy measured again and its SHA-256. lenet5-1998 takes ~15-25 minutes of one core.
# The shipped lenet5 files were trained before the compiled lenet5 step existed: with numba
# installed a run now takes that step, so their bits come back with `--set step=torch` only.
WEIGHTS := lenet5:lenet5 lenet5-1998:lenet5-1998 lenet5-tanh:lenet5-tanh \
           lenet5-sigmoid:lenet5-sigmoid-fashion
weights: install
	@for pair in $(WEIGHTS); do name=$${pair%%:*}; recipe=$${pair#*:}; \
	  OMP_NUM_THREADS=1 $(BIN)/lenet train --config $$recipe --seed 0 \
	    --run-dir runs/weights/$$name --overwrite && \
	  $(BIN)/lenet weights publish runs/weights/$$name --name $$name --recipe $$recipe \
	    || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
