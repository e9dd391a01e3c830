# Two commands matter: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nbconvo-installed
MODEL ?= qwen2.5-coder-0.5b

.PHONY: setup fetch-model demo test lint typecheck clean bench

setup: $(STAMP)

# Reinstall when the project's dependencies change. llama-cpp-python compiles from
# source the first time (about 5 minutes on 2 cores); pip caches the wheel afterwards.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet -e '.[local,test]'
	touch $(STAMP)

fetch-model: setup
	$(PY) -m nbconvo._localmodel fetch $(MODEL)

demo: fetch-model
	$(PY) -m nbconvo._cli run notebooks/quickstart.ipynb --output demo-output/quickstart.ipynb --transcript demo-output/quickstart.md

lint: setup
	$(PY) -m ruff check nbconvo tests bench scripts
	$(PY) -m ruff format --check nbconvo

typecheck: setup
	$(PY) -m mypy

test: fetch-model lint typecheck
	NBCONVO_REQUIRE_MODEL=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache

bench: setup
	$(PY) bench/bench_meter.py

# Re-record the documentation notebooks and their cassettes on the real local model
# (the 1.5B one: its answers read better; replaying them needs no model at all).
NOTEBOOKS := quickstart forking long-conversations providers
DOCS_MODEL ?= qwen2.5-coder-1.5b
record-notebooks: setup
	$(PY) -m nbconvo._localmodel fetch $(DOCS_MODEL)
	mkdir -p notebooks/cassettes demo-output
	for nb in $(NOTEBOOKS); do \
	  rm -f notebooks/cassettes/$$nb.jsonl; \
	  NBCONVO_STREAM=0 NBCONVO_AUTOSAVE=off $(PY) -m nbconvo._cli run notebooks/$$nb.ipynb \
	    --model llama:$(DOCS_MODEL) --cassette notebooks/cassettes/$$nb.jsonl --mode record \
	    --output notebooks/$$nb.ipynb --transcript demo-output/$$nb.md --quiet || exit 1; \
	done
