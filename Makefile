# RecoWorld developer commands. `make run` and `make test` set up .venv on first use.

export LITELLM_LOCAL_MODEL_COST_MAP=True
# models and tokenizers come from installed packages only (nothing is fetched from a hub at run time)
export HF_HUB_OFFLINE=1

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Two stamps: `make run` needs only the core dependencies (a light first run); `make test` adds every
# extra the suite and CI need, so `make test` after `make run` installs just the extras.
CORE   := $(VENV)/.core-installed
STAMP  := $(VENV)/.installed
EXTRAS := dev,docs,rl,llm,local,align,ray,agent

.PHONY: venv core run test test-fast docs bench clean clean-cache

venv: $(STAMP)

core: $(CORE)

$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e .
	touch $(CORE)

# torch is installed first and pinned: pip finds the local CPU wheel, whereas an
# unpinned torch (pulled in by stable-baselines3) would download GBs of CUDA packages.
# The local extra builds llama-cpp-python from its sdist the first time (10-17 min on 2 cores,
# needs a C++ compiler); pip's wheel cache makes later installs take seconds.
$(STAMP): pyproject.toml $(CORE)
	$(BIN)/python -m pip install "torch==2.13.0"
	CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-2} $(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

run: core
	$(BIN)/recoworld run quickstart --overwrite

test: venv
	$(BIN)/python -m pytest -q

# the suite without the statistical and training claims (marked slow; CI runs everything)
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

# the documentation site, built into site/ (`.venv/bin/mkdocs serve` shows it while you edit)
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: venv
	@set -e; for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f; done

clean:
	rm -rf $(VENV)

# numba's on-disk cache checks only the file of each compiled function, not the parts it inlines from other
# modules: after editing a compiled part, clear it (a stale entry can compute the old code, or crash)
clean-cache:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -print | xargs rm -f
