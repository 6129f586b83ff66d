# Two entry points, each installing what it needs into .venv on first use:
#   make demo   the main job: pre-train on gm_notes, probe, write results/nsynth/results.{json,md,png}
#   make test   the test suite (what CI runs)
# and `make bench`: the ranking benchmark against torchsort.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# tinysoundfont's only dependency, pyaudio, is for live playback: --no-deps.
# scaper's SoX dependencies have no wheel here and are not used (shuffle_learn/data/sound_events.py): --no-deps.
$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[test,tfds,tasks]'
	$(BIN)/pip install -q --no-deps tinysoundfont scaper==1.6.5
	touch $@

# torchsort compiles against the installed torch, so it is built without isolation;
# nvcc is kept off PATH so that it builds its CPU extension only.
$(VENV)/.installed-bench: setup.cfg pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[test,tfds,tasks,bench]'
	$(BIN)/pip install -q --no-deps tinysoundfont scaper==1.6.5
	PATH="$(abspath $(BIN)):/usr/bin:/bin" $(BIN)/pip install -q --no-build-isolation torchsort || echo "torchsort could not be built; the benchmark runs without it."
	touch $@

.PHONY: demo test bench
demo: $(VENV)/.installed-test
	$(BIN)/python -m experiments.nsynth --workdir results/nsynth

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.ranking --workdir results/ranking_benchmark

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2 tests
