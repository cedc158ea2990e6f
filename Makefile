# procqa task runner. `make serve` and `make test` set everything up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTHON ?= python3

.PHONY: install serve index test lint format eval bench loadtest browser-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# the CPU build of torch first, so sentence-transformers does not pull a CUDA one
	$(PY) -m pip install --quiet "torch==2.13.0" || $(PY) -m pip install --quiet torch
	$(PY) -m pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install procqa with its dev tools and the ray extra

index: $(STAMP) ## build the index of corpus/ when there is none (`procqa index` updates it)
	test -f index/CURRENT || $(BIN)/procqa index --corpus corpus --out index

serve: index ## serve the shipped corpus at http://127.0.0.1:8000
	$(BIN)/procqa serve

browser-deps: ## headless Chromium and its driver for the browser test (Debian packages)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; fi

test: lint browser-deps ## lint, then run the whole test suite
	$(BIN)/pytest -q

lint: $(STAMP) ## ruff, ruff format, strict mypy and the layer contracts (import-linter)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

eval: index ## score procqa against the baselines on six question sets (reports/)
	$(BIN)/procqa eval --questions eval/questions.jsonl --index index --out reports
	$(BIN)/procqa eval --questions eval/questions-2.jsonl --index index --out reports/questions-2
	$(BIN)/procqa index --corpus eval/conditions/corpus --out reports/conditions/index
	$(BIN)/procqa eval --questions eval/conditions/questions.jsonl --index reports/conditions/index --out reports/conditions
	$(BIN)/procqa index --corpus eval/medicines/corpus --out reports/medicines/index
	$(BIN)/procqa eval --questions eval/medicines/questions.jsonl --index reports/medicines/index --out reports/medicines
	$(BIN)/procqa index --corpus eval/hospital/corpus --out reports/hospital/index
	$(BIN)/procqa eval --questions eval/hospital/questions.jsonl --index reports/hospital/index --out reports/hospital
	$(BIN)/procqa index --corpus eval/leaflets/corpus --out reports/leaflets/index
	$(BIN)/procqa eval --questions eval/leaflets/questions.jsonl --index reports/leaflets/index --out reports/leaflets
	$(BIN)/procqa calibrate --collections eval/collections.json --out reports/calibration

bench: index ## latency, throughput and memory benchmarks; Ray builds and serving workers
	$(PY) scripts/bench.py
	$(PY) scripts/bench_scale.py

loadtest: index ## 60 s of mixed valid and hostile traffic on loopback
	$(PY) scripts/loadtest.py --spawn-index index

clean:
	rm -rf $(VENV) reports .pytest_cache .ruff_cache
