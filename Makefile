# Set-up and entry points. Everything installs into .venv from the package registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXP ?= quickstart

.PHONY: install assets test experiment bench parity clean

install: assets $(STAMP)

# System assets the registries do not carry: WordNet 3.0 from Debian (see scripts/install_wordnet.sh).
assets:
	sh scripts/install_wordnet.sh

# Re-runs only when the dependency list changes; torch==2.13.0 (test extra) is the local CPU wheel.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Two workers: 1029 s instead of 1613 s on the 2-core AMD EPYC build machine (2026-12-02).
test: install
	$(PY) -m pytest -q -n 2

# Runs experiments/$(EXP).py into runs/$(EXP)/ (resumed if interrupted; assets fetched on first use).
# EXP=NAME:ARG passes ARG to the config (EXP=transfer_study:small runs into runs/transfer_study-small/).
# ARGS passes more flags, e.g. ARGS="--overwrite --config.seed=1".
experiment: install
	$(PY) -m jaxrobust experiment --config $(EXP) --workdir runs/$(subst :,-,$(EXP)) $(ARGS)

# Benchmarks; figures go to bench/results/ (JSON + markdown). Reuses runs/finetune_minilm_rt if done.
# The attack benchmark builds TextAttack's own venv in the cache on first use (about 4 minutes).
bench: install
	$(PY) bench/finetune_vs_pytorch.py
	$(PY) bench/attack_vs_textattack.py
	$(PY) bench/sweep_vs_attacks.py
	$(PY) bench/objectives_step_time.py
	$(PY) bench/decoder_vs_pytorch.py
	$(PY) bench/synonym_quality.py

parity: install
	$(PY) -m jaxrobust parity $(or $(REF),bundle:minilm-l6)

clean:
	rm -rf $(VENV) .pytest_cache
