# The two commands a newcomer needs: `make serve` and `make test`. Each installs what it needs
# into .venv from this project's own files first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install demo bench clean

$(BIN)/.installed: pyproject.toml
	sh deploy/install.sh $(VENV) -e '.[test]'
	touch $@

install: $(BIN)/.installed

serve: $(BIN)/.installed
	$(BIN)/switchyard serve

demo: $(BIN)/.installed
	$(BIN)/switchyard demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
