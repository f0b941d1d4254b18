# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv and install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPA_WHEEL_HASHES ?= 1
# Lambda architecture of the artifact: x86_64 or arm64 (the template's Architecture parameter)
ARCH ?= x86_64
LAMBDA_DIR := build/lambda
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

.PHONY: install demo test test-deps lint typecheck policy-test pytest bench bench-anchors clean tools opa-check package smoke deploy-tools iac-scan sam-build

$(STAMP): pyproject.toml requirements-opa.txt constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]' -c constraints.txt
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
	$(BIN)/ruff check enforcer lambdas tests scripts benchmarks
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

# SAM CLI and checkov in their own venv (their pins clash with ours); CI runs this once (~3 min).
$(TOOLS_STAMP): requirements-deploy-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PY) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install -q -r requirements-deploy-tools.txt
	touch $(TOOLS_STAMP)

deploy-tools: $(TOOLS_STAMP)

# checkov over both templates, offline; every finding is fixed or suppressed in the template with its reason
iac-scan: deploy-tools
	BC_SKIP_MAPPING=TRUE $(TOOLS_VENV)/bin/checkov --skip-download --framework cloudformation --compact --quiet \
		-f infra/template.yaml -f infra/member-account.yaml

# what a deployer runs: sam build copies build/lambda unchanged (infra/Makefile) into build/sam
sam-build: package deploy-tools
	SAM_CLI_TELEMETRY=0 $(TOOLS_VENV)/bin/sam build -t infra/template.yaml --build-dir build/sam

pytest: install deploy-tools package
	$(BIN)/pytest

test: tools lint typecheck policy-test opa-check smoke pytest

# Headless Chromium for the HTML report test (Debian package; needs root, as in CI).
test-deps:
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || echo "chromium not installed: the report screenshot test will be skipped"

# Every figure beside its comparison, measured in the same run; writes bench-results/bench.json and
# regenerates the README's table from it (scripts/bench.py does both; sections: scripts/bench.py cold replay). Cloud Custodian is measured when .venv-anchors exists.
bench: install tools
	$(BIN)/python scripts/bench.py

# Cloud Custodian (c7n from PyPI) and moto in their own venv, for the cold-start anchor in make bench.
bench-anchors:
	test -x .venv-anchors/bin/python || $(PY) -m venv .venv-anchors
	.venv-anchors/bin/python -m pip install -q 'c7n==0.9.53' 'moto==5.2.1'

clean:
	rm -rf $(VENV) $(TOOLS_VENV) build .enforcer .enforcer-demo .pytest_cache .mypy_cache .ruff_cache
