# gwms-tasks: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: test demo lint typecheck unit venv redis-server chromium shellcheck bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Make sure a redis-server binary exists: install Debian's package when missing and root.
redis-server:
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "redis-server missing: installing Debian's redis-server package"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null && \
		{ service redis-server stop >/dev/null 2>&1 || true; }; \
	else \
		echo "redis-server is missing. Install it (Debian/Ubuntu: 'sudo apt-get install redis-server'," \
		     "Fedora: 'sudo dnf install redis') and run make again." >&2; exit 1; \
	fi

# The web page tests drive a real headless browser: Debian's chromium, installed when missing
# and root (Playwright drives it; no browser is downloaded from the internet).
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "chromium missing: installing Debian's chromium package (browser tests)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is missing: the browser tests will be skipped outside CI" \
		     "(Debian/Ubuntu: 'sudo apt-get install chromium')." >&2; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

shellcheck: venv
	@files="$$(find gwms_tasks workers tests bench -name '*.sh' 2>/dev/null)"; \
	if [ -n "$$files" ]; then echo "shellcheck $$(echo $$files | wc -w) scripts"; $(BIN)/shellcheck -x $$files; fi

test: venv redis-server chromium lint typecheck shellcheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv redis-server
	$(BIN)/python -m gwms_tasks.demo $(ARGS)

bench: venv redis-server
	$(BIN)/python bench/scale.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-artifacts .demo
