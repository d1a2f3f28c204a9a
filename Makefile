# Two commands for a newcomer: `make demo` (build and serve the demo city) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test install lint bench-synth bench-imports bench-read bench-registry bench-lists bench-inbox bench-rules bench-city bench-job-counter bench-counter bench-load bench-bank bench-pay bench-pages clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { $(PYTHON) -m pip install -q virtualenv && $(PYTHON) -m virtualenv -q $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/.installed

## Build a fresh demo city on SQLite (data/demo.db) and serve it on http://127.0.0.1:8000
demo: install
	$(BIN)/ykt demo

## Run the test suite (SQLite by default; set YKT_TEST_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check src tests benchmarks

## Benchmarks (slow; figures go to docs/benchmarks.md with the machine they ran on)
bench-synth: install
	$(BIN)/python benchmarks/synth_city.py --scale 1

bench-imports: install
	$(BIN)/python benchmarks/import_persons.py --rows 100000

bench-read: install
	$(BIN)/python benchmarks/read_files.py --xlsx-rows 100000 --hukou-rows 300000

# bench-registry reads a city already built: YKT_DATABASE_URL=sqlite:////tmp/s1.db make bench-registry
bench-registry: install
	$(BIN)/python benchmarks/registry_queries.py --runs 20

# Department lists of 100,000 claims (CSV and xlsx) and one inbox of 100,000 waiting: SQLite by default,
# PostgreSQL with BENCH_DB=postgresql+psycopg://postgres@127.0.0.1:5432/postgres make bench-lists
bench-lists: install
	$(BIN)/python benchmarks/department_list.py --rows 100000 $(if $(BENCH_DB),--database $(BENCH_DB))

bench-inbox: install
	$(BIN)/python benchmarks/inbox.py $(if $(BENCH_DB),--database $(BENCH_DB))

# All interception rules over a city already built with its shared data (ykt synth), against the same rules
# checked one application at a time in plain Python on a sample; the flags recorded are rolled back:
# YKT_DATABASE_URL=sqlite:////tmp/s1.db YKT_DATA_DIR=/tmp/s1data make bench-rules
bench-rules: install
	$(BIN)/python benchmarks/interception.py --sample 20000

# The city run on the kept snapshot: a first run, a run with nothing changed, a run after 1,000 claims (LEFT in
# the database), the rules alone and peak memory; reads a city already built and migrated:
# YKT_DATABASE_URL=sqlite:////tmp/s1/s1.db YKT_DATA_DIR=/tmp/s1/data make bench-city
bench-city: install
	$(BIN)/python benchmarks/city_run.py $(if $(BENCH_DB),--database $(BENCH_DB))

# The city run queued as a job (run by `ykt jobs run-once`) while a village clerk enters 20 claims at the
# counter of `ykt serve` (p95 target 1 s); reads a city already built, LEAVES the 25 claims it enters:
# YKT_DATABASE_URL=sqlite:////tmp/s1/s1.db YKT_DATA_DIR=/tmp/s1/data make bench-job-counter
# one claim at a time at the counter and through the API, on a city already built:
# YKT_DATABASE_URL=sqlite:////tmp/s1/s1.db YKT_DATA_DIR=/tmp/s1/data make bench-counter
bench-counter: install
	$(BIN)/python benchmarks/counter.py --claims 50

bench-job-counter: install
	$(BIN)/python benchmarks/job_and_counter.py --claims 20 --timeout $(or $(BENCH_TIMEOUT),1800)

# 28 users against the real server on 127.0.0.1 for 120 s (readers, racing approvers, counter clerks,
# department systems retrying their keys): SQLite by default, PostgreSQL with BENCH_DB=... make bench-load
bench-load: install
	$(BIN)/python benchmarks/mixed_load.py --seconds $(or $(BENCH_SECONDS),120) $(if $(BENCH_DB),--database $(BENCH_DB))

# Bank files of a 1,000,000-record batch: export (fixed width, delimited, pain.001), bank-sim, return and
# statement read back and checked; pure over records, no database
bench-bank: install
	$(BIN)/python benchmarks/bank_files.py --records $(or $(BENCH_RECORDS),1000000) --validate

# the payment loop in the database at 1,000,000 records (scratch SQLite file; PostgreSQL with BENCH_DB=...)
bench-pay: install
	$(BIN)/python benchmarks/payment_loop.py --records $(or $(BENCH_RECORDS),1000000) $(if $(BENCH_BANK),--bank $(BENCH_BANK)) $(if $(BENCH_DB),--database $(BENCH_DB))

# The statistics, flags and inbox pages over HTTP (ykt serve) for each demo user who sees them, 30 timed
# requests each after 3 warm-up (p95 target 300 ms); reads a city already built and writes only logins:
# YKT_DATABASE_URL=sqlite:////tmp/s1/s1.db YKT_DATA_DIR=/tmp/s1/data make bench-pages
bench-pages: install
	$(BIN)/python benchmarks/pages.py --runs $(or $(BENCH_RUNS),30) $(if $(BENCH_DB),--database $(BENCH_DB))

clean:
	rm -rf data .pytest_cache
