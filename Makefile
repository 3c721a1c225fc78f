# negmine developer tasks. `make demo` and `make test` work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed first so that no dependency pulls a CUDA build.
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE := 1

.PHONY: install demo test docs lint bench clean

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

test: install
	$(BIN)/python -m pytest -q

docs: install
	$(BIN)/python -m negmine.cli.doc > docs/cli.md

lint: install
	$(BIN)/ruff check negmine tests benchmarks
	$(BIN)/mypy negmine
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests/test_architecture.py

clean:
	rm -rf $(VENV) out .pytest_cache
