# negmine developer tasks. `make demo` and `make test` work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed first so that no dependency pulls a CUDA build.
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE := 1

.PHONY: install servers demo test docs lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	# FlagEmbedding's own data loader reads the flagembedding output in a test; its dependencies (peft,
	# ir-datasets, ...) are not needed for that, so it comes without them.
	$(BIN)/python -m pip install --quiet --no-deps "FlagEmbedding==1.4.2"
	touch $@

demo: install
	mkdir -p out
	$(BIN)/negmine mine --corpus examples/tiny/corpus.parquet --queries examples/tiny/queries.parquet \
		--qrels examples/tiny/qrels.parquet --output out/demo.parquet
	@echo "negatives written to out/demo.parquet"

# A real OpenAI-compatible embeddings server for the endpoint tests (tests/test_endpoint_servers.py):
# infinity-emb pins older numpy/typer/rich, so it lives in an environment of its own.
SERVERS ?= .venv-infinity
servers: $(SERVERS)/.installed

$(SERVERS)/.installed: tests/servers/infinity-constraints.txt
	$(PYTHON) -m venv $(SERVERS)
	$(SERVERS)/bin/python -m pip install --quiet --upgrade pip
	$(SERVERS)/bin/python -m pip install --quiet "$(TORCH)"
	$(SERVERS)/bin/python -m pip install --quiet -c tests/servers/infinity-constraints.txt \
		"$(TORCH)" "infinity-emb[server,torch]==0.0.78"
	touch $@

test: install servers
	$(BIN)/python -m pytest -q

docs: install
	$(BIN)/python -m negmine.cli.doc > docs/cli.md

lint: install
	$(BIN)/ruff check negmine tests benchmarks
	$(BIN)/mypy negmine
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests/test_architecture.py

clean:
	rm -rf $(VENV) $(SERVERS) out .pytest_cache
