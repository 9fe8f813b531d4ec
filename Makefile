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
	sh deploy/install.sh $(VENV) -e .
	touch $@

$(BIN)/.installed: pyproject.toml
	sh deploy/install.sh $(VENV) -e '.[test]'
	touch $@ $(BIN)/.runtime

install: $(BIN)/.installed

serve: $(BIN)/.runtime
	$(BIN)/switchyard serve --host $(HOST) --port $(PORT)

demo: $(BIN)/.runtime
	$(BIN)/switchyard demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
