# The two commands of the README: `make demo` and `make test`. Both install into .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
EXTRAS := llm,openai,s3,http,parquet,sklearn,learn,postgres,compress,examples,server,plots,optimize,dev
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: install demo test check bench clean

install: $(STAMP)

# llama-cpp-python compiles from source (about 9 minutes on 2 cores); pip caches the wheel,
# so later installs take seconds. It is built for a portable x86-64 (AVX2), not -march=native:
# a native build on a CPU with AMX segfaulted in llama_decode on every prompt of two tokens or
# more (llama-cpp-python 0.3.36, Sapphire Rapids under a VM), and a wheel from the cache may
# run on another CPU than the one that built it.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(PIP) install --quiet -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.installed-*
	touch $@

# learn the intents from the labelled history (the dev tickets; the golden holdout is never
# learned from), then triage held-out tickets: the agents resolve what they are sure of
demo: install
	$(VENV)/bin/relayflow retrain examples/customer_support/workflow.yaml --store .relayflow/demo.db
	$(VENV)/bin/relayflow run examples/customer_support/workflow.yaml --split holdout --limit 12 \
		--concurrency 2 --store .relayflow/demo.db

test: install
	source scripts/test-services.sh && $(VENV)/bin/pytest -q

check: install
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install
	$(PIP) install --quiet -e '.[$(EXTRAS),bench]'
	$(PY) benchmarks/orchestration.py
	$(PY) benchmarks/import_time.py

clean:
	rm -rf .relayflow .pytest_cache .mypy_cache .ruff_cache
