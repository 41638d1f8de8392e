# threefs entry points. `make run` and `make test` each install first (idempotent).
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system venv test lint run bench compare docs clean

install: system $(STAMP)

system:
	bash scripts/install-system.sh

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VPY) -m threefs.errors_doc --check docs/errors.md

test: lint
	$(VPY) -m pytest -q -p no:cacheprovider

run: install
	$(VPY) -m client.demo --data-dir /tmp/threefs-demo/data --mount /tmp/threefs-demo/mnt

bench: install
	$(VPY) bench/rpc.py
	$(VPY) bench/kv.py
	$(VPY) bench/meta.py
	$(VPY) bench/fuse.py

compare: install
	$(VPY) bench/compare.py

docs: install
	$(VPY) -m threefs.errors_doc --write docs/errors.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
