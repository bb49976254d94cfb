# Two commands set everything up: `make run` (the service with demo data) and `make test` (both backends).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export FLASK_APP := wsgi

.PHONY: run test lint console messages test-spatialite test-postgis fuzz fuzz-http bench bench-escalate bench-geo bench-read bench-field bench-volume soak venv clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# The supervisors' console (console/ -> app/console_dist/, git-ignored): npm ci when the lockfile changed, esbuild
# when a source did; nothing is rebuilt when nothing changed.
CONSOLE_DIST := app/console_dist/index.html
CONSOLE_MODULES := console/node_modules/.package-lock.json
CONSOLE_SOURCES := $(wildcard console/src/*) console/index.html console/build.mjs

$(CONSOLE_MODULES): console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $(CONSOLE_MODULES)

$(CONSOLE_DIST): $(CONSOLE_MODULES) $(CONSOLE_SOURCES)
	cd console && node build.mjs

console: $(CONSOLE_DIST)

run: $(STAMP) $(CONSOLE_DIST)
	scripts/run.sh

test: $(STAMP) $(CONSOLE_DIST)
	$(MAKE) --no-print-directory lint
	scripts/ensure-spatialite.sh
	@# The two halves side by side, each one's output printed whole when it ends: on 2 cores the suites wait on
	@# their databases often enough that together they take about as long as the PostGIS half alone.
	$(MAKE) --no-print-directory -j2 --output-sync=target test-spatialite test-postgis

# ruff (lint and format) and import-linter's layer contracts, configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The message catalogue: every tr() text of app/ merged into each language's .po, new ones with an empty
# translation for a translator to fill (tests/test_i18n.py fails while one is empty). The .po files are the
# catalogue itself, read at start: nothing is compiled.
messages: $(STAMP)
	mkdir -p instance
	$(BIN)/pybabel -q extract -F babel.cfg -k tr --no-default-keywords --no-location --sort-output -w 120 -o instance/messages.pot .
	$(BIN)/pybabel -q update -i instance/messages.pot -d app/translations -D messages --no-fuzzy-matching --ignore-obsolete -w 120

test-spatialite: $(STAMP) $(CONSOLE_DIST)
	TEST_BACKEND=spatialite $(BIN)/pytest -q -p no:cacheprovider tests

test-postgis: $(STAMP) $(CONSOLE_DIST)
	TEST_BACKEND=postgis $(BIN)/pytest -q -p no:cacheprovider tests

# The fuzz of `make test` with many more examples (FUZZ_EXAMPLES, default 100) on both backends, and a summary.
fuzz: $(STAMP)
	scripts/ensure-spatialite.sh
	scripts/ensure-postgis.sh
	scripts/fuzz.sh

# schemathesis run over HTTP against gunicorn on a fresh PostGIS database, as admin and as resident.
fuzz-http: $(STAMP)
	scripts/ensure-postgis.sh
	scripts/fuzz-http.sh

bench: $(STAMP)
	scripts/ensure-postgis.sh
	$(BIN)/python -m bench.run_bench $(BENCH_ARGS)

bench-geo: $(STAMP)
	scripts/ensure-postgis.sh
	$(BIN)/python -m bench.geo_bench $(BENCH_ARGS)

bench-read: $(STAMP)
	scripts/ensure-postgis.sh
	$(BIN)/python -m bench.read_bench $(BENCH_ARGS)

bench-field: $(STAMP)
	scripts/ensure-postgis.sh
	$(BIN)/python -m bench.field_bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache console/node_modules app/console_dist

bench-escalate: $(STAMP)
	scripts/ensure-postgis.sh
	$(BIN)/python -m bench.escalate_bench $(BENCH_ARGS)

bench-volume: $(STAMP)
	scripts/ensure-postgis.sh
	$(BIN)/python -m bench.volume_bench $(BENCH_ARGS)

# Two hosts behind HAProxy, two sweepers, PostGIS and a private Redis through faults (restarts the machine's
# PostgreSQL for a few seconds; root). Minutes long: not part of `make test`. SOAK_ARGS go to bench/soak.py.
soak: $(STAMP)
	scripts/soak.sh $(SOAK_ARGS)
