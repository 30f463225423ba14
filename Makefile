# The two commands of the README: `make run` and `make test`. Both create the virtualenv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= 9

$(BIN)/spotcheck: pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/spotcheck

.PHONY: venv browser run test lint unit histories bench rules-doc contract-doc monitoring-doc
venv: $(BIN)/spotcheck

# The workbench's browser tests drive Debian's chromium through Playwright (never `playwright install`): as root
# it is installed with apt when missing (and a CJK font, so screenshots show the Chinese labels); elsewhere the
# tests skip with a message saying so.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get install -y -qq chromium fonts-wqy-microhei || (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei)) >/dev/null; \
	else echo "make browser: no chromium and not root: the browser tests will be skipped"; fi

run: venv
	$(BIN)/spotcheck up --demo $(DEMO)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy domain/ workflows/ activities/ starter/ telemetry.py codec.py settings.py monitoring.py worker.py detached_runner.py

# Four processes (on two cores): most tests wait on a server or a timer, and each process has its own
# servers (tests/conftest.py); work stealing keeps the long end-to-end tests from queueing behind each other.
test: lint browser
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 4 --dist worksteal

# Save the histories of real runs for the replay tests (tests/histories/); commit them.
histories: venv
	SPOTCHECK_RECORD_HISTORIES=1 $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/test_sample_lifecycle.py tests/test_bad_decisions.py tests/test_full_sample.py \
		tests/test_branch_rectification.py \
		tests/test_hardened_intake.py::test_the_answer_comes_at_once_and_the_decision_is_acted_on_once_audited \
		tests/test_outbox_dispatcher.py \
		tests/test_calendar_recompute.py::test_loading_a_year_moves_a_spring_festival_deadline \
		tests/test_plans.py::test_a_200_sample_plan_runs_to_completion

# Issue 9's figures beside bare Temporal, written to bench/RESULTS.md (about 10 min on 2 cores);
# BENCH_ARGS=--quick for tiny sizes (under 2 min), BENCH_ARGS="--open 100000" for the full open-sample count.
BENCH_ARGS ?=
bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

# docs/rules.md from the rule packs (tests/test_rules_show.py fails when it is stale).
rules-doc: venv
	$(BIN)/spotcheck rules show --markdown > docs/rules.md

# The generated tables of docs/contract.md (workflow handlers, decision kinds) from the code.
contract-doc: venv
	$(BIN)/python -m starter.contract

# The generated views of docs/monitoring.md from starter/views.py (tests/test_views.py fails when stale).
monitoring-doc: venv
	$(BIN)/python -m starter.views
