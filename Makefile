# rarewatch: two commands on a fresh machine (README "Quick start").
#   make run   monthly refresh on the bundled sample releases, no network
#   make test  the whole test suite
#   make serve local Prefect server + UI (127.0.0.1:4200), live sources; make serve-samples: the samples, schedules paused
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Prefect runs embedded (ephemeral, SQLite under .prefect/) and never phones home.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED = false
export PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY = false
export DO_NOT_TRACK = 1
export PREFECT_SERVER_ALLOW_EPHEMERAL_MODE = true

.PHONY: run test serve serve-samples install clean bench bench-quick

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing rarewatch into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install --upgrade pip > $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	@$(BIN)/python -m pip install -e '.[test]' >> $(VENV)/install.log 2>&1 || (cat $(VENV)/install.log; exit 1)
	touch $(STAMP)

install: $(STAMP)

# `exec`: the shell make starts for a recipe line is replaced by the program, so a SIGTERM that
# make forwards to its child reaches the program itself (a shell would die and leave it running).
run: $(STAMP)
	RAREWATCH_INBOX=$${RAREWATCH_INBOX:-samples/inbox} exec $(BIN)/rarewatch refresh

# The live sources (network), schedules active; `make serve-samples` serves the bundled samples
# with every schedule paused. RAREWATCH_SERVE_PORT (default 4200) moves the UI.
serve: $(STAMP)
	exec $(BIN)/python -m flows.serve

serve-samples: $(STAMP)
	RAREWATCH_INBOX=samples/inbox exec $(BIN)/python -m flows.serve

test: $(STAMP)
	exec $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

clean:
	-test -x $(BIN)/rarewatch && $(BIN)/rarewatch server stop
	rm -rf warehouse/raw warehouse/clean warehouse/indicators warehouse/quarantine warehouse/_staging warehouse/_writer.lock warehouse/_publish.journal restricted .prefect
