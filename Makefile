# chatlake: `make run` for the local stack, `make test` for the tests. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test fuzz bench lint demo clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

run: setup
	$(BIN)/python -m chalicelib serve --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest

# The property tests of tests/test_fuzz.py with FUZZ_EXAMPLES random cases each (make test runs a fixed set).
FUZZ_EXAMPLES ?= 5000
fuzz: setup
	CHATLAKE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py tests/test_exactly_once.py

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check .

demo: setup
	$(BIN)/python -m chalicelib demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
