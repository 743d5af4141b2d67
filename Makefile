# RecoWorld developer commands. `make run` and `make test` set up .venv on first use.

export LITELLM_LOCAL_MODEL_COST_MAP=True
# models and tokenizers come from installed packages only (nothing is fetched from a hub at run time)
export HF_HUB_OFFLINE=1

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv run test test-fast bench clean

venv: $(STAMP)

# torch is installed first and pinned: pip finds the local CPU wheel, whereas an
# unpinned torch (pulled in by stable-baselines3) would download GBs of CUDA packages.
# The local extra builds llama-cpp-python from its sdist the first time (10-17 min on 2 cores,
# needs a C++ compiler); pip's wheel cache makes later installs take seconds.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "torch==2.13.0"
	CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} $(BIN)/python -m pip install -e ".[dev,rl,llm,local,align,ray]"
	touch $(STAMP)

run: venv
	$(BIN)/recoworld run quickstart --overwrite

test: venv
	$(BIN)/python -m pytest -q

# the suite without the statistical and training claims (marked slow; CI runs everything)
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

bench: venv
	@set -e; for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf $(VENV)
