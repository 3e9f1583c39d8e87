# factory: the two commands a new user needs are `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch first and exactly: a range would make pip fetch a multi-GB CUDA build.
TORCH_PIN := torch==2.13.0

.PHONY: install train test test-fast bench clean

install: $(STAMP)

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/python scripts/train.py experiment=fraud_detection $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf outputs multirun .pytest_cache
