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

.PHONY: install train test lint browser bench weights reader clean fuzz docs dist

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[all,dev]"
# Compile the numba training steps now (~25 s, once per CPU kind, kept in numba's cache),
# so that the first `make train` starts at full speed.
	$(BIN)/python -m lenet.training.steps.warm
	touch $@

install: $(BIN)/.installed

train: install
	$(BIN)/lenet data fetch mnist
	$(BIN)/lenet train --config $(CONFIG) --run-dir $(RUN)
	$(BIN)/lenet report $(RUN)

# Style, complexity and imports at the top (ruff), who may import whom (import-linter) and
# types (mypy over src/lenet), all configured in pyproject.toml.
lint: install
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/lint-imports
	$(BIN)/mypy

# The web app's browser test drives Debian's chromium; install it when we can (CI runs as root).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: /usr/bin/chromium is missing; the browser test will be skipped"

test: lint browser
	$(BIN)/python -m pytest -q

# The hostile-input suite, long: every `fuzz`-marked test with fresh seeds, round after round,
# until FUZZ_SECONDS have passed (make test runs the same tests with a few fixed examples).
FUZZ_SECONDS ?= 600
fuzz: install
	@end=$$(( $$(date +%s) + $(FUZZ_SECONDS) )); round=0; \
	while [ $$(date +%s) -lt $$end ]; do round=$$((round + 1)); \
	  HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q -m fuzz -p no:cacheprovider \
	    --hypothesis-seed=$$round || exit 1; done; echo "fuzz: $$round rounds, no failure"

# The API reference site (mkdocs.yml) at http://127.0.0.1:8001, rebuilt on every edit; nothing
# is written to the checkout. `make test` builds it with --strict (tests/test_docs.py).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# The release files in dist/: the sdist and the wheel, checked as a package index would.
dist: install
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

# Speed, side by side in one run: `lenet bench` (training, time to 99 %, peak, inference).
bench: install
	$(BIN)/lenet bench --out runs/bench/bench.json

# The pretrained weights bundled in the package (src/lenet/models/pretrained): each shipped
# recipe with seed 0 on one thread (bit-identical on a given CPU kind), then published with its
# test accuracy measured again and its SHA-256. lenet5-1998 takes ~15-25 minutes of one core.
# The shipped lenet5 files were trained before the compiled lenet5 step existed: with numba
# installed a run now takes that step, so their bits come back with `--set step=torch` only.
# Those in REJECT also carry a reject margin, chosen on the held-out training digits of a
# second run of the same recipe and seed (--set val_size=10000): lenet5-real, the default.
WEIGHTS := lenet5:lenet5 lenet5-1998:lenet5-1998 lenet5-tanh:lenet5-tanh \
           lenet5-sigmoid:lenet5-sigmoid-fashion lenet5-real:lenet5-real
REJECT := lenet5-real
weights: install
	@for pair in $(WEIGHTS); do name=$${pair%%:*}; recipe=$${pair#*:}; reject=; \
	  case " $(REJECT) " in *" $$name "*) \
	    OMP_NUM_THREADS=1 $(BIN)/lenet train --config $$recipe --seed 0 --set val_size=10000 \
	      --run-dir runs/weights/$$name-val --overwrite || exit 1; \
	    reject="--reject-from runs/weights/$$name-val";; esac; \
	  OMP_NUM_THREADS=1 $(BIN)/lenet train --config $$recipe --seed 0 \
	    --run-dir runs/weights/$$name --overwrite && \
	  $(BIN)/lenet weights publish runs/weights/$$name --name $$name --recipe $$recipe \
	    $$reject || exit 1; done

# The bundled SDNN reader (lenet5-sdnn, src/lenet/models/pretrained/readers.json): four LeNet-5s
# side by side, their logits averaged (stored as int8, 252 KB). Member k: lenet5-real digit
# weights (seed 1 or 2) trained on every MNIST training digit but the last 5,000 (held out for
# the reader's threshold and report), replicated over the line, then flanked windows and CTC
# on strings of training digits, seed k, one thread; members 3 and 4 see half their digits
# freshly distorted. About 30 minutes of one core each: `make -j2 reader` runs two at once.
# Then the four are joined and the threshold chosen on held-out strings.
READER_RUNS := runs/reader
READER_MEMBERS := $(foreach k,1 2 3 4,$(READER_RUNS)/sdnn-$(k)/lenet5-sdnn.safetensors)
reader: $(READER_MEMBERS)
	OMP_NUM_THREADS=1 $(BIN)/python -m lenet.training.reader --join $^
$(READER_RUNS)/digits-%/model.safetensors: | install
	OMP_NUM_THREADS=1 $(BIN)/lenet train --config lenet5-real --seed $* --train-subset 55000 \
	  --threads 1 --no-tensorboard --run-dir $(READER_RUNS)/digits-$* --overwrite
$(READER_RUNS)/sdnn-1/lenet5-sdnn.safetensors $(READER_RUNS)/sdnn-3/lenet5-sdnn.safetensors: \
  $(READER_RUNS)/digits-1/model.safetensors
$(READER_RUNS)/sdnn-2/lenet5-sdnn.safetensors $(READER_RUNS)/sdnn-4/lenet5-sdnn.safetensors: \
  $(READER_RUNS)/digits-2/model.safetensors
$(READER_RUNS)/sdnn-%/lenet5-sdnn.safetensors:
	OMP_NUM_THREADS=1 $(BIN)/python -m lenet.training.reader --init $(dir $<) --seed $* \
	  $(if $(filter 3 4,$*),--p-distort 0.5) --out $(READER_RUNS)/sdnn-$*

clean:
	rm -rf $(VENV) build dist site .cache *.egg-info src/*.egg-info .pytest_cache .ruff_cache
