# AlignLab — two commands: `make lab` (set up, start the book) and `make test` (set up, run every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is installed first so pip never swaps in a different build. CPU-only Linux users:
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
PROFILE     ?= ci
NOTEBOOK_DIRS := $(sort $(dir $(wildcard chapters/*.ipynb labs/*.ipynb)))

.PHONY: lab test unit notebooks zoo book-outputs bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

lab: $(BIN)/.installed
	$(BIN)/jupyter lab --notebook-dir=. chapters/00_how_to_use.ipynb

# The ci profile, in a cache folder of its own unless ALIGNLAB_HOME is set.
test: export ALIGNLAB_PROFILE = ci
test: export ALIGNLAB_HOME ?= $(CURDIR)/.alignlab
test: export MPLBACKEND = Agg
test: $(BIN)/.installed
	$(BIN)/alignlab zoo build --profile ci
	$(BIN)/python -m pytest tests -n 2 -q
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -n 2 --dist loadscope -q \
	  --nbval-cell-timeout=300 --junitxml=bench/out/nbval.xml $(NOTEBOOK_DIRS)
	$(BIN)/python bench/notebook_times.py bench/out/nbval.xml

zoo: $(BIN)/.installed
	$(BIN)/alignlab zoo build --profile $(PROFILE)

# Regenerate the committed notebook outputs from an empty cache (default: the cpu profile).
book-outputs: PROFILE = cpu
book-outputs: $(BIN)/.installed
	home=$${ALIGNLAB_HOME:-$$(mktemp -d)}; \
	for nb in chapters/*.ipynb; do \
	  echo "== $$nb ($(PROFILE) profile, cache $$home)"; \
	  ALIGNLAB_PROFILE=$(PROFILE) ALIGNLAB_HOME=$$home MPLBACKEND=Agg $(BIN)/jupyter nbconvert \
	    --to notebook --execute --inplace --ExecutePreprocessor.timeout=3600 $$nb || exit 1; \
	done

bench: $(BIN)/.installed
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache bench/out
