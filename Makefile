# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv and install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPA_WHEEL_HASHES ?= 1
# Lambda architecture of the artifact: x86_64 or arm64 (the template's Architecture parameter)
ARCH ?= x86_64
LAMBDA_DIR := build/lambda

.PHONY: install demo test test-deps lint typecheck policy-test pytest bench clean tools opa-check package smoke

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

# OPA built from its Go module, pinned and checksum-verified by tools/opa/go.mod + go.sum, into .tools/bin/opa
# (needs Go >= 1.26; ~3.5 min the first time on 2 cores, ~1 s when up to date). No Go: skipped unless CI=true.
tools:
	tools/build-opa.sh

# OPA's own authoring checks over policies/: opa fmt, opa check --strict, opa test --coverage (floor 90%).
opa-check: install tools
	$(BIN)/python scripts/opa_checks.py policies

# The Lambda artifact exactly as deployed (code, policies/, dependencies for CPython 3.12 on AL2023, the
# OPA shared library for ARCH); infra/template.yaml deploys build/lambda. See docs/deploy.md.
package: install
	$(BIN)/python scripts/package.py --arch $(ARCH) --out $(LAMBDA_DIR)

# Artifact smoke test: glibc <= 2.34 and ELF machine of every .so, size < 250 MB, handlers import and the
# embedded engine decides with nothing but the artifact and the standard library on sys.path.
smoke: package
	$(BIN)/python scripts/smoke_artifact.py $(LAMBDA_DIR) --arch $(ARCH)

pytest: install
	$(BIN)/pytest

test: tools lint typecheck policy-test opa-check smoke pytest

# Headless Chromium for the HTML report test (Debian package; needs root, as in CI).
test-deps:
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || echo "chromium not installed: the report screenshot test will be skipped"

bench: install tools
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .enforcer .enforcer-demo .pytest_cache .mypy_cache .ruff_cache
