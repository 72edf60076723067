# Every target creates the virtual environment it needs; nothing has to be installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SCENARIO ?= all
PYTEST_ARGS ?=

.PHONY: venv lint test demo run crds clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m jitgrant.crdgen crds --check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv
	$(BIN)/jitgrant demo --scenario $(SCENARIO)

run: venv
	$(BIN)/jitgrant run

crds: venv
	$(BIN)/python -m jitgrant.crdgen crds
	cp crds/*.yaml charts/jitgrant/crds/

bench: venv
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
