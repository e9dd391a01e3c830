# Two commands matter: `make demo` and `make test`. Each sets up everything it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nbconvo-installed
MODEL ?= qwen2.5-coder-0.5b
WIDGET := nbconvo/static/widget.js
JS_DEPS := js/node_modules/.package-lock.json

.PHONY: setup fetch-model demo test test-js lint typecheck check clean bench stress

setup: $(STAMP) $(WIDGET)

# Reinstall when the project's dependencies change. llama-cpp-python compiles from
# source the first time (about 5 minutes on 2 cores); pip caches the wheel afterwards.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet -e '.[local,test]'
	touch $(STAMP)

# The widget's front end. `pip install -e .` builds it too (hatch-jupyter-builder); these
# rules rebuild it when js/ changes without a reinstall.
$(JS_DEPS): js/package.json js/package-lock.json
	cd js && npm ci

$(WIDGET): $(JS_DEPS) js/build.mjs $(wildcard js/src/*)
	cd js && npm run build

test-js: $(JS_DEPS)
	cd js && npm test

fetch-model: setup
	$(PY) -m nbconvo._localmodel fetch $(MODEL)

demo: fetch-model
	$(PY) -m nbconvo._cli run notebooks/quickstart.ipynb --model llama:$(MODEL) --output demo-output/quickstart.ipynb --transcript demo-output/quickstart.md

lint: setup
	$(PY) -m ruff check nbconvo tests bench scripts
	$(PY) -m ruff format --check nbconvo

typecheck: setup
	$(PY) -m mypy

test: fetch-model lint typecheck test-js
	NBCONVO_REQUIRE_MODEL=1 $(PY) -m pytest

# The inner loop: lint, types and the unit tests (tests/unit: no model, kernel or browser),
# the tests spread over both cores. Prints how long it took; meant to stay under a minute.
check: setup
	@started=$$(date +%s); \
	$(PY) -m ruff check nbconvo tests bench scripts && $(PY) -m ruff format --check nbconvo \
	  && $(PY) -m mypy && $(PY) -m pytest -q -n 2 tests/unit; \
	status=$$?; echo "make check: $$(( $$(date +%s) - started )) s"; exit $$status

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache nbconvo/static js/node_modules

# The peers live in their own environments (they need conflicting openai versions).
BENCH_AI := bench/.venv-jupyter-ai
BENCH_LLM := bench/.venv-llm

$(BENCH_AI)/.installed:
	test -x $(BENCH_AI)/bin/python || $(PYTHON) -m venv $(BENCH_AI)
	$(BENCH_AI)/bin/python -m pip install --quiet 'jupyter-ai-magics>=2,<3' 'langchain-openai<0.4' ipython
	touch $@

$(BENCH_LLM)/.installed:
	test -x $(BENCH_LLM)/bin/python || $(PYTHON) -m venv $(BENCH_LLM)
	$(BENCH_LLM)/bin/python -m pip install --quiet llm ipython
	touch $@

# Writes bench/RESULTS.md. A missed goal is reported there, not failed on.
bench: setup $(BENCH_AI)/.installed $(BENCH_LLM)/.installed
	$(PY) -m pip install --quiet pyinstrument
	mkdir -p bench/out
	$(PY) bench/bench_meter.py | tee bench/out/meter.txt
	$(PY) bench/bench_widget.py | tee bench/out/widget.txt
	$(PY) bench/bench_values.py | tee bench/out/values.txt
	$(PY) bench/bench_cache.py | tee bench/out/cache.txt
	$(PY) bench/bench_load.py
	$(PY) bench/bench_turn.py
	$(PY) bench/bench_stream.py
	$(PY) bench/bench_peers.py
	$(PY) bench/bench_scale.py
	$(PY) bench/bench_store.py
	$(PY) bench/bench_run.py
	$(PY) bench/bench_local_cache.py | tee bench/out/local_cache.txt
	$(PY) bench/profile_misses.py
	$(PY) bench/report.py

# Re-record the documentation notebooks and their cassettes on the real local model
# (the 1.5B one: its answers read better; replaying them needs no model at all).
NOTEBOOKS := quickstart forking long-conversations providers data tools
DOCS_MODEL ?= qwen2.5-coder-1.5b
record-notebooks: setup
	$(PY) -m nbconvo._localmodel fetch $(DOCS_MODEL)
	mkdir -p notebooks/cassettes demo-output
	for nb in $(NOTEBOOKS); do \
	  rm -f notebooks/cassettes/$$nb.jsonl; \
	  NBCONVO_STREAM=0 NBCONVO_AUTOSAVE=off $(PY) -m nbconvo._cli run notebooks/$$nb.ipynb \
	    --model llama:$(DOCS_MODEL) --cassette notebooks/cassettes/$$nb.jsonl --mode record --allow-tools \
	    --output notebooks/$$nb.ipynb --transcript demo-output/$$nb.md --quiet || exit 1; \
	done

# The reliability suite at full size: the randomized fault campaign with 300 conversations,
# 50 kernel interrupts and 20 SIGKILLs (`make test` runs 30, 10 and 3), plus the fault,
# bad-input and secrets tests. NBCONVO_CAMPAIGN_SEED=N replays a run.
stress: setup
	NBCONVO_CAMPAIGN_CONVERSATIONS=300 NBCONVO_INTERRUPTS=50 NBCONVO_KILLS=20 \
	  $(PY) -m pytest -q tests/reliability
