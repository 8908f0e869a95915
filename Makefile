# The two commands: `make run` starts the whole local stack, `make test` runs every test.
# `make faults` runs the fault drills (REDUCED=1 for small batches).
# `make test-unit` runs the tests that need neither PostgreSQL nor Temporal, in seconds.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test test-unit bench faults backup lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock -r requirements-dev.lock
	touch $@

run: install
	$(BIN)/python -m scripts.local_stack

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# PostgreSQL and Chromium (for the browser tests) are installed from Debian's packages when missing.
# TEST_PROCESSES test modules run at once, each process on a database of its own (tests/conftest.py).
TEST_PROCESSES ?= 2
test: install lint
	database="$$(scripts/test-postgres.sh)" && browser="$$(scripts/install-chromium.sh)" && \
	TEST_DATABASE_URL="$$database" TEST_CHROMIUM="$$browser" $(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile

# The unit tier (tests/conftest.py): no database, no Temporal server, no TEST_DATABASE_URL.
test-unit: install
	env -u TEST_DATABASE_URL $(BIN)/pytest -m unit

# Orders per second against bare Temporal workflows on the same server; see bench/run.py --help.
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The whole stack as separate processes on a PostgreSQL server of its own, broken in turn mid-batch.
faults: install
	$(BIN)/pytest faults $(if $(REDUCED),--reduced)

# A backup of the order database and the Temporal store now; see python -m scripts.backup --help.
backup: install
	$(BIN)/python -m scripts.backup create

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
