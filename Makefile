# chatlake: `make run` for the local stack, `make test` for the tests. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help setup run test fuzz bench lint demo clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'
	@echo "  (make run PORT=8080 / make demo PORT=8080 to use another port)"

setup: $(STAMP) ## create .venv and install chatlake and its tools (idempotent)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chatlake needs Python 3.11 or newer; this is " + sys.version.split()[0] + ": run make PYTHON=python3.11 ...")'
	@echo "setting up $(VENV): Python packages (about a minute the first time) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@echo "installing the chatlake command into $(BIN) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)
	@echo "ready: $(BIN)/chatlake --help (or: source $(BIN)/activate)"

run: setup ## start the local stack on 127.0.0.1:8000 (webhooks, lake in ./datalake, the ETL schedule)
	$(BIN)/chatlake serve --host $(HOST) --port $(PORT)

test: setup ## run every test (tests/unit, tests/integration, tests/e2e)
	$(BIN)/python -m pytest

# The property tests with FUZZ_EXAMPLES random cases each (make test runs a fixed set).
FUZZ_EXAMPLES ?= 5000
fuzz: setup ## the property tests with FUZZ_EXAMPLES random cases each
	CHATLAKE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/unit/test_fuzz.py tests/integration/test_exactly_once.py

bench: setup ## the benchmarks, as ratios against baselines measured in the same run
	$(BIN)/python -m bench

lint: setup ## ruff
	$(BIN)/ruff check .

demo: setup ## signed synthetic traffic through the local stack, the ETL and a query
	$(BIN)/chatlake demo --port $(PORT)

clean: ## remove .venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
