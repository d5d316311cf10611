# Two commands matter: `make demo` (the main job end to end) and `make test` (the whole suite).
PYTHON ?= $(shell ./scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo team-demo test test-fast typecheck lint bench clean dist install

demo: $(STAMP)
	$(BIN)/python -m demo

# Team mode end to end: `clavis-mcp team dev`, the `clavis` SDK, a killed worker, a revoked key, the audit.
team-demo: $(STAMP)
	./scripts/ensure-system-deps
	$(BIN)/python -m demo.team_demo

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

# An sdist and a wheel in dist/, built offline by the venv's setuptools (the wheel from the sdist).
dist: $(STAMP)
	$(BIN)/python scripts/build-dist dist

# clavis-mcp for real use, outside this clone (Claude Desktop keeps working if the clone moves):
# pipx or uv, whichever is installed. docs/install.md has the other ways.
install:
	@if command -v pipx >/dev/null; then pipx install --force .; \
	elif command -v uv >/dev/null; then uv tool install --force .; \
	else echo "install pipx or uv first, or see docs/install.md" >&2; exit 1; fi
	@echo "next: clavis-mcp init; clavis-mcp install claude-desktop"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build dist *.egg-info
