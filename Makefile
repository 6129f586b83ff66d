# Two entry points, each installing what it needs into .venv on first use:
#   make demo   the main job: pre-train on gm_notes, probe, write results/nsynth/results.{json,md,png}
#   make test   the test suite, then `make light` (what CI runs)
# and `make bench`: the ranking benchmark against torchsort; `make light`: the
# bare install (`pip install shuffle_learn`: the ranking library, JAX and NumPy)
# built into an empty virtual environment runs the README's ranking example.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The `train` extra is everything but the ranking library (the bare install).
# tinysoundfont's only dependency, pyaudio, is for live playback: --no-deps.
# scaper's SoX dependencies have no wheel here and are not used (shuffle_learn/data/sound_events.py): --no-deps.
$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[train,test,tfds,tasks]'
	$(BIN)/pip install -q --no-deps tinysoundfont scaper==1.6.5
	touch $@

# torchsort compiles against the installed torch, so it is built without isolation;
# nvcc is kept off PATH so that it builds its CPU extension only.
$(VENV)/.installed-bench: setup.cfg pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[train,test,tfds,tasks,bench]'
	$(BIN)/pip install -q --no-deps tinysoundfont scaper==1.6.5
	PATH="$(abspath $(BIN)):/usr/bin:/bin" $(BIN)/pip install -q --no-build-isolation torchsort || echo "torchsort could not be built; the benchmark runs without it."
	touch $@

# hear-validator imports torch and TensorFlow: its own venv, so that torch stays out of .venv.
# It requires `tensorflow`, which the tfds extra's tensorflow-cpu provides under another name: --no-deps.
HEAR_VENV := .venv-hear
$(HEAR_VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(HEAR_VENV)
	$(HEAR_VENV)/bin/pip install -q --upgrade pip
	$(HEAR_VENV)/bin/pip install -q -e '.[train,tfds]' torch==2.13.0
	$(HEAR_VENV)/bin/pip install -q --no-deps hearvalidator
	touch $@

.PHONY: demo test bench light hear
demo: $(VENV)/.installed-test
	$(BIN)/python -m experiments.nsynth --workdir results/nsynth

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.ranking --workdir results/ranking_benchmark

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -n 2 tests
	$(MAKE) --no-print-directory light

light: $(VENV)/.installed-test
	$(BIN)/python tools/check_light_install.py

# The HEAR API (shuffle_learn.hear_tf) on the shipped model, through the real validator.
hear: $(HEAR_VENV)/.installed
	$(HEAR_VENV)/bin/hear-validator shuffle_learn.hear_tf --model shuffle_learn/pretrained/audio_cfn
