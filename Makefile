# Two commands on a fresh machine: `make reconcile` and `make test`. Both set up .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo
DATE   ?= 2026-11-26
ROWS   ?= 100000
SEED   ?= 1
PYTEST_ARGS ?=

AF_VENV  := .venv-airflow
AF_STAMP := $(AF_VENV)/.installed
AIRFLOW  ?= 3.3.2

MONTH  ?= 2026-11
MDEMO  ?= demo-month
MDAYS  ?= 30

.PHONY: setup test test-fast test-airflow lint reconcile reconcile-pg demo bench clean browser month

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# Debian's Chromium, for the real-browser report test (root on these machines; sudo elsewhere).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) test-airflow

# Airflow lives in its own venv, so its pins never constrain the package.
$(AF_STAMP): pyproject.toml
	test -x $(AF_VENV)/bin/python || $(PYTHON) -m venv $(AF_VENV)
	$(AF_VENV)/bin/python -m pip install -q --upgrade pip
	$(AF_VENV)/bin/python -m pip install -q "apache-airflow==$(AIRFLOW)" "pytest>=9,<10" -e .
	touch $(AF_STAMP)

test-airflow: $(AF_STAMP)
	$(AF_VENV)/bin/python -m pytest tests_airflow -p no:cacheprovider $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not integration" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check billing jobs tests tests_airflow benchmarks
	$(BIN)/python -m mypy billing

$(DEMO)/raw:
	$(BIN)/billing demo --out $(DEMO) --date $(DATE) --rows $(ROWS) --seed $(SEED)

demo: setup $(DEMO)/raw

# Succeeds whenever the run completes: exit 0 (no flagged drift) or 3 (drift flagged; the demo plants drift).
reconcile: setup $(DEMO)/raw
	@$(BIN)/billing reconcile --date $(DATE) --raw $(DEMO)/raw --stream $(DEMO)/stream --out $(DEMO)/out; \
	rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi; \
	echo "outputs: $(DEMO)/out/dt=$(DATE)/$$(cat $(DEMO)/out/dt=$(DATE)/_current.json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["dir"])')"; \
	echo "report:  $(DEMO)/out/dt=$(DATE)/$$(cat $(DEMO)/out/dt=$(DATE)/_current.json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["dir"])')/report.html"

# A demo month (README, "Closing a month"): MDAYS planted days (day 20: ten times the drift), each reconciled;
# days 1-15 signed off; day 5 restated by a late file after its sign-off; the open adjustments; the month.
$(MDEMO)/out:
	$(BIN)/billing demo --out $(MDEMO) --date $(MONTH)-01 --days $(MDAYS) --rows 4000 --spike-day $(MONTH)-20
	@for d in $$(seq -w 1 $(MDAYS)); do \
	  $(BIN)/billing -q reconcile --date $(MONTH)-$$d --raw $(MDEMO)/raw --stream $(MDEMO)/stream --out $(MDEMO)/out \
	    >/dev/null; rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi; done
	@for d in $$(seq -w 1 15); do \
	  $(BIN)/billing sign-off --date $(MONTH)-$$d --out $(MDEMO)/out --by finance@example.com --note "invoice run" \
	    || exit $$?; done
	$(BIN)/python -c "import datetime as d, pathlib as p; from billing.demo_days import add_late_file; \
	  print('late clicks per ad (clicks, spend micros):', add_late_file(p.Path('$(MDEMO)'), \
	  d.date.fromisoformat('$(MONTH)-05'), {2003: 4, 2011: 2, 2039: 1}))"
	@$(BIN)/billing -q reconcile --date $(MONTH)-05 --raw $(MDEMO)/raw --stream $(MDEMO)/stream --out $(MDEMO)/out \
	  >/dev/null; rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi

month: setup $(MDEMO)/out
	$(BIN)/billing adjustments --month $(MONTH) --out $(MDEMO)/out --csv $(MDEMO)/adjustments.csv
	$(BIN)/billing month --month $(MONTH) --out $(MDEMO)/out
	@echo "month.html: $(MDEMO)/out/month=$(MONTH)/$$(cat $(MDEMO)/out/month=$(MONTH)/_current.json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["dir"])')/month.html"

# The same demo day with its stream side in a PostgreSQL sink table (upsert-style; STREAM_DB_MODE=insert keeps
# the sink's duplicate rows). The password, if any, comes from PGPASSWORD or ~/.pgpass, never from the URI here.
# Only the default demo table is replaced when it holds rows; a STREAM_DB of your own is refused if it does.
STREAM_DB_DEMO := postgresql://postgres@127.0.0.1:5432/test?table=billing_demo.stream_minutes
STREAM_DB      ?= $(STREAM_DB_DEMO)
STREAM_DB_MODE ?= upsert

reconcile-pg: setup
	rm -rf $(DEMO)-pg
	$(BIN)/billing demo --out $(DEMO)-pg --date $(DATE) --rows $(ROWS) --seed $(SEED) \
	  --stream-db "$(STREAM_DB)" --stream-db-mode $(STREAM_DB_MODE) \
	  $(if $(filter $(STREAM_DB_DEMO),$(STREAM_DB)),--stream-db-replace)
	@$(BIN)/billing reconcile --date $(DATE) --raw $(DEMO)-pg/raw --stream "$(STREAM_DB)" --out $(DEMO)-pg/out; \
	rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi; \
	echo "report:  $(DEMO)-pg/out/dt=$(DATE)/$$(cat $(DEMO)-pg/out/dt=$(DATE)/_current.json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["dir"])')/report.html"

bench: setup
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(DEMO) $(DEMO)-pg $(MDEMO) .pytest_cache .ruff_cache .mypy_cache
