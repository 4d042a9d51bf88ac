# Every target is one command. `make dev` runs the stack; `make test` runs the suite.
# Both set up what they need first: a pinned uv, the project's virtualenv from uv.lock, and the
# ministack emulator and checkov in virtualenvs of their own (their pins would fight ours);
# `make test` also installs the browser tests' npm packages (Chromium itself comes from apt).

PYTHON ?= python3
UV_VERSION := 0.13.8
MINISTACK_VERSION := 1.5.33

UV := .venv-tools/bin/uv
# The Python on this machine is the one we use; uv must not try to download another.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: setup dev test lint format bench clean

setup: .venv/.synced .venv-ministack/bin/ministack

dev: setup
	$(UV) run --frozen python -m devstack

test: setup .venv-checkov/bin/checkov node_modules/.installed
	$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: setup
	$(UV) run --frozen ruff check . && $(UV) run --frozen ruff format --check . && $(UV) run --frozen mypy

format: setup
	$(UV) run --frozen ruff check --fix . && $(UV) run --frozen ruff format .

bench: setup
	$(UV) run --frozen python bench/renditions.py
	$(UV) run --frozen python bench/api.py

clean:
	rm -rf .venv .venv-tools .venv-ministack .venv-checkov .devstack .pytest_cache .mypy_cache .ruff_cache node_modules .artifacts

$(UV):
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	touch $@

.venv-ministack/bin/ministack: | $(UV)
	$(UV) venv --quiet --allow-existing .venv-ministack
	VIRTUAL_ENV=.venv-ministack $(UV) pip install --quiet ministack==$(MINISTACK_VERSION)

# The browser tests' driver (playwright-core) and Uppy; the browser is the system's Chromium.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error && touch $@

.venv-checkov/bin/checkov: infra/scripts/checkov-requirements.txt | $(UV)
	PATH="$(CURDIR)/.venv-tools/bin:$$PATH" infra/scripts/checkov-venv.sh
