# The two commands of the README: `make run` and `make test`. Both create the virtualenv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= 6

$(BIN)/spotcheck: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/spotcheck

.PHONY: venv run test lint unit histories bench
venv: $(BIN)/spotcheck

run: venv
	$(BIN)/spotcheck up --demo $(DEMO)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy domain/ workflows/ activities/ starter/

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

histories: venv
	$(BIN)/python -m tests.record_histories

bench: venv
	$(BIN)/python -m bench.history_size
