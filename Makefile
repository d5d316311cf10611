# Two commands matter: `make demo` (the main job end to end) and `make test` (the whole suite).
PYTHON ?= $(shell ./scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast typecheck lint bench clean

demo: $(STAMP)
	$(BIN)/python -m demo

test: $(STAMP)
	./scripts/ensure-system-deps
	./scripts/ensure-node-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck
	$(BIN)/python -m pytest

# The inner loop: the suite without the end-to-end tests (subprocesses, real proxies, real upstreams).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not e2e"

# mypy, strict, on the packages as they install (clavis_mcp.*); settings in pyproject.toml [tool.mypy].
typecheck: $(STAMP)
	$(BIN)/python scripts/typecheck

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info
