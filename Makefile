# notify: one command to run it, one to test it. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help run test lint unit integration bench clean i18n-extract i18n-update i18n-compile

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Browser tests drive Debian's Chromium with Playwright; never a browser download.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The console's accessibility check injects axe-core, from the npm registry, into each page.
AXE := var/npm/node_modules/axe-core/axe.min.js
$(AXE):
	mkdir -p var/npm && npm install --prefix var/npm --no-audit --no-fund --silent axe-core@4

# Message catalogues: translations/<locale>/LC_MESSAGES/messages.po is the source, the .mo is
# compiled from it here (by install, run and test) and never committed.
CATALOGUES := $(wildcard translations/*/LC_MESSAGES/messages.po)
COMPILED   := $(CATALOGUES:.po=.mo)
translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@ -l $*

i18n-compile: $(COMPILED)  ## compile the message catalogues

i18n-extract: $(STAMP)  ## collect every translatable text into translations/messages.pot
	$(BIN)/pybabel extract -F babel.cfg -o translations/messages.pot --add-location=file \
		--width=100 --project=notify --copyright-holder=notify --ignore-dirs=".* __pycache__ var" .

i18n-update: i18n-extract  ## bring each catalogue up to date with the sources (new texts start untranslated, English copies them)
	$(BIN)/pybabel update -i translations/messages.pot -d translations --width=100 \
		--no-fuzzy-matching --ignore-obsolete
	$(BIN)/python -m notify.i18n.maintenance translations/en/LC_MESSAGES/messages.po

install: $(STAMP) $(COMPILED)  ## create the virtual environment, install notify with its test tools, compile the catalogues

# make run PORT=8001 when 8000 is taken; HOST=0.0.0.0 to be reachable from other machines.
# HOST is only taken from make's command line: some shells export the machine's name as HOST.
PORT ?= 8000
HOST := 127.0.0.1
run: $(STAMP) $(COMPILED)  ## start web, worker and beat on the embedded default (SQLite, SQL broker, mailbox folder)
	$(BIN)/notify dev --host $(HOST) --port $(PORT)

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check notify tests bench worker.py beat_schedule.py
	$(BIN)/ruff format --check notify tests bench worker.py beat_schedule.py
	$(BIN)/mypy

# Two jobs side by side; any run failing fails the target, and the second job's output follows
# the first's. Each pytest-xdist process has a stack of its own (tests/support/stack.py); these
# tests mostly wait on workers, SMTP and outages, not on the CPU.
# - Beside: in one process, the OpenAPI conformance run (schemathesis gives its cases one test
#   id, so pytest-xdist would run one of them) and then the unit tier (its tests set
#   process-wide state; the data keys are put back after each test, the rest is not audited, so
#   they never run between integration files); then the fault tier (services of its own) and
#   the RabbitMQ stack (a virtual host, database and SMTP server of its own) in two processes.
# - Main: the rest, in two processes, a test file to each at a time.
SERIAL    := tests/integration/test_openapi_conformance.py tests/unit
FAULTS    := tests/faults tests/integration/on_rabbitmq
PROCESSES := -n 2 --dist loadfile

test: $(STAMP) $(COMPILED) $(CHROMIUM) $(AXE) lint  ## install what the tests need, lint, run every test (needs PostgreSQL, Redis and RabbitMQ)
	@mkdir -p var
	( $(BIN)/pytest $(SERIAL) -p no:cacheprovider; serial=$$?; \
	  $(BIN)/pytest $(FAULTS) $(PROCESSES) -p no:cacheprovider --durations=10; faults=$$?; \
	  test $$serial -eq 0 && test $$faults -eq 0 ) > var/test-beside.log 2>&1 & beside=$$!; \
	trap 'pkill -P $$beside 2>/dev/null; kill $$beside 2>/dev/null' INT TERM HUP; \
	$(BIN)/pytest $(SERIAL:%=--ignore=%) $(FAULTS:%=--ignore=%) $(PROCESSES) --durations=10; \
	main=$$?; \
	wait $$beside; beside=$$?; \
	echo "---- beside: OpenAPI conformance and the unit tier, then tests/faults and RabbitMQ ----"; \
	cat var/test-beside.log; \
	test $$main -eq 0 && test $$beside -eq 0

bench: $(STAMP)  ## every benchmark against real services, then one summary table (bench/README.md)
	$(BIN)/python -m bench.summary $(BENCH_ARGS)

clean:  ## remove the virtual environment and local data
	rm -rf $(VENV) var
