# Quick start: `make search` (a short real search on the default preset) and `make test`.
# Both create or reuse .venv and install what they need (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
EVALUATIONS ?= 16
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup search test test-all lint format bench

setup:
	@scripts/setup.sh

search: setup
	@if [ -f $(FASHION) ] || [ -n "$$RLNAS_ENV" ]; then env=$${RLNAS_ENV:-fashion_mnist}; \
	else echo "==> Fashion-MNIST is not installed: running the offline digits preset instead"; env=digits; fi; \
	$(BIN)/rlnas search --env $$env --agent ppo --evaluations $(EVALUATIONS)

test: setup
	@$(BIN)/python -m pytest -q

test-all: setup
	@$(BIN)/python -m pytest -q -m ""

lint: setup
	@$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	@$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: setup
	@$(BIN)/python bench/step_time.py
