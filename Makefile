# The two commands a newcomer needs: `make serve` and `make test`. Each installs what it needs
# into .venv from this project's own files first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 4000

.PHONY: serve test install demo bench clean

# runtime dependencies only (serve, demo); the test extras add the SDKs, Playwright, hypothesis...
$(BIN)/.runtime: pyproject.toml
	PYTHON=$(PYTHON) sh deploy/install.sh $(VENV) -e .
	touch $@

$(BIN)/.installed: pyproject.toml
	PYTHON=$(PYTHON) sh deploy/install.sh $(VENV) -e '.[test]'
	touch $@ $(BIN)/.runtime

install: $(BIN)/.installed

serve: $(BIN)/.runtime
	$(BIN)/switchyard serve --host $(HOST) --port $(PORT)

# drives the gateway `make serve` started (its demo key is in .switchyard/demo-key), else one in-process
demo: $(BIN)/.runtime
	@if [ -f .switchyard/demo-key ] && $(BIN)/python -c "import urllib.request; urllib.request.urlopen('http://$(HOST):$(PORT)/healthz', timeout=2)" 2>/dev/null; then \
		$(BIN)/switchyard demo --url http://$(HOST):$(PORT) --key-file .switchyard/demo-key; \
	else \
		echo "No gateway from 'make serve' answers on $(HOST):$(PORT): running the demo in-process. (Start 'make serve' in another terminal first to fill its dashboard.)"; \
		$(BIN)/switchyard demo; \
	fi

# pytest on three workers, each test file kept on one (its gateways and mocks start once): most
# of the suite waits on processes it started, so it takes half the time of one worker on two cores
test: $(BIN)/.installed
	$(BIN)/ruff format --check router pricing policies benchmarks tests
	$(BIN)/ruff check --select F,E9 router pricing policies benchmarks tests
	$(BIN)/ruff check --select C901 router pricing policies
	$(BIN)/mypy --strict policies pricing
	$(BIN)/mypy router
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
