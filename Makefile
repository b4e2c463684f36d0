# promote — make targets. Quick start: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv system-deps lint typecheck unit test test-fast demo bench clean action-yml lab lab-stop

# Every tool CI runs is pinned and hash-checked (requirements/dev.txt, compiled from dev.in),
# pip and setuptools included: a new release of a tool cannot turn CI red by itself.
$(STAMP): pyproject.toml requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests and the demo need (registry, skopeo, Docker engine, debootstrap).
system-deps:
	scripts/install-system-deps.sh

# Every Python tree of the repository, linted and format-checked in one pass each.
PY_SOURCES := promote tests testkit entrypoint.py bench scripts

lint: $(STAMP)
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)
	$(VENV)/bin/zizmor --offline --persona=pedantic --strict-collection --quiet .github/workflows/ examples/workflows/*.yml action.yml

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Everything CI runs: lint, types, static workflow audit, the whole test suite (e2e included).
test: $(STAMP) lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider

# Without the slow end-to-end tests, for the edit loop.
test-fast: $(STAMP)
	$(VENV)/bin/pytest -q -m 'not e2e' -x

demo: $(STAMP)
	scripts/install-system-deps.sh docker-registry
	$(PY) scripts/demo.py

bench: $(STAMP)
	scripts/install-system-deps.sh
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

# Regenerate action.yml from promote/frontdoor/inputs.py and promote/frontdoor/outputs.py.
action-yml: $(STAMP)
	$(PY) scripts/gen_action_yml.py

# The course chapter on one machine (docs/lab.md): registry, GitOps repo, builds, automation,
# promotion, verification and both rollbacks. LAB_STEP=1 pauses after each step; the
# registry stays up until `make lab-stop`. State in $(LAB_DIR) (default .lab/).
lab: $(STAMP)
	scripts/install-system-deps.sh docker-registry git
	$(PY) scripts/lab.py

lab-stop: $(STAMP)
	$(PY) scripts/lab.py stop
# Release the action (scripts/release.py; the release workflow runs exactly this):
#   make release IMAGE=ghcr.io/acme/promote [VERSION=X.Y.Z | BUMP=patch|minor|major] [BASE_IMAGE=...]
# builds and pushes IMAGE:staging-<sha7>-<ts>, smoke-tests it by digest, promotes that digest
# with the image itself, and tags release commits vX.Y.Z (the branch is left as it is).
.PHONY: release
VERSION ?=
BUMP ?= patch
IMAGE ?=
BASE_IMAGE ?=
release: $(STAMP)
	$(PY) scripts/release.py --image "$(IMAGE)" --version "$(VERSION)" --bump "$(BUMP)" --base-image "$(BASE_IMAGE)"
