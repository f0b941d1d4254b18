# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv and install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPA_WHEEL_HASHES ?= 1

.PHONY: install demo test test-deps lint typecheck policy-test pytest bench clean

$(STAMP): pyproject.toml requirements-opa.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
ifeq ($(OPA_WHEEL_HASHES),1)
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python --require-hashes -r requirements-opa.txt
else
	$(BIN)/python -m pip install -q --no-deps --ignore-requires-python opa-golib-python-bindings==0.4.4
endif
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/enforcer --state .enforcer-demo demo

lint: install
	$(BIN)/ruff check enforcer lambdas tests scripts
	$(BIN)/ruff format --check enforcer lambdas

typecheck: install
	$(BIN)/mypy

policy-test: install
	$(BIN)/enforcer policy test policies

pytest: install
	$(BIN)/pytest

test: lint typecheck policy-test pytest

# Headless Chromium for the HTML report test (Debian package; needs root, as in CI).
test-deps:
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || echo "chromium not installed: the report screenshot test will be skipped"

bench: install
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .enforcer .enforcer-demo .pytest_cache .mypy_cache .ruff_cache
