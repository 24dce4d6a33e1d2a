# AlignLab — two commands: `make lab` (set up, open the book) and `make test` (set up, run every test).
#
# Variables (pass on the command line, e.g. `make lab TORCH_INDEX=...`):
#   PYTHON       interpreter that creates .venv                     (python3)
#   TORCH        torch requirement, installed before everything else  (torch==2.13.0)
#   TORCH_INDEX  pip index for torch; CPU-only Linux users pass
#                TORCH_INDEX=https://download.pytorch.org/whl/cpu     (empty: PyPI)
#   PROFILE      profile for `make zoo` (ci) and `make book-outputs` (cpu)
#   ALIGNLAB_HOME  cache for `make test` (./.alignlab) and `make book-outputs` (a fresh temp dir)
PYTHON      ?= python3
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
PROFILE     ?= ci
BIN         := .venv/bin
PHASE        = @echo "[make $$(date -u +%H:%M:%S)] $(1)"
STAMP       := .venv/.installed
# Only folders that hold notebooks: pytest exits 5 ("no tests collected") on an empty one.
NOTEBOOK_DIRS := $(patsubst %/,%,$(sort $(dir $(wildcard chapters/*.ipynb labs/source/*/*.ipynb))))

.PHONY: venv lab test zoo book-outputs bench clean site

# The virtual environment; reinstalled only when pyproject.toml changes. torch goes first (and is
# kept if it already imports) so pip never swaps in a different build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv .venv
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || \
	  $(BIN)/python -m pip install "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

venv .venv: $(STAMP)

# As root (the default user of Docker images and many cloud notebook machines) JupyterLab refuses
# to start without --allow-root; pass it then, and say so.
USER_ID ?= $(shell id -u)
lab: $(STAMP)
	@if [ "$(USER_ID)" = 0 ]; then echo "[make] running as root: starting JupyterLab with --allow-root"; fi
	$(BIN)/jupyter lab $(if $(filter 0,$(USER_ID)),--allow-root) --notebook-dir=. chapters/00_how_to_use.ipynb

# The website from the committed notebooks, into _build/html (offline once MathJax is installed).
site/node_modules/mathjax/package.json: site/package.json
	npm install --prefix site --no-audit --no-fund --silent
site: $(STAMP) site/node_modules/mathjax/package.json
	$(call PHASE,site: the book as a website in _build/html)
	$(BIN)/python site/build.py

zoo: $(STAMP)
	ALIGNLAB_PROFILE=$(PROFILE) $(BIN)/alignlab zoo build --profile $(PROFILE)

# The ci profile, with a cache of its own unless ALIGNLAB_HOME is set. Notebook times are written
# to bench/out/notebook_times.json even when a notebook fails.
test: export ALIGNLAB_PROFILE = ci
test: export ALIGNLAB_HOME ?= $(CURDIR)/.alignlab
test: export MPLBACKEND = Agg
test: $(STAMP) site
	$(call PHASE,zoo: build the ci checkpoints once (ALIGNLAB_HOME=$$ALIGNLAB_HOME))
	$(BIN)/alignlab zoo build --profile ci
	$(call PHASE,unit tests)
	$(BIN)/python -m pytest tests -n 2
ifneq ($(NOTEBOOK_DIRS),)
	$(call PHASE,notebooks with nbval: $(NOTEBOOK_DIRS))
	@# two notebooks run at once on two cores: one thread each, or their OpenMP threads fight
	mkdir -p bench/out
	status=0; OMP_NUM_THREADS=1 $(BIN)/python -m pytest --nbval-lax --nbval-current-env -n 2 --dist loadscope \
	  -p no:randomly --nbval-cell-timeout=300 -o junit_family=xunit1 \
	  --junitxml=bench/out/nbval.xml $(NOTEBOOK_DIRS) || status=$$?; \
	$(BIN)/python bench/notebook_times.py bench/out/nbval.xml; exit $$status
else
	@echo "no notebooks in chapters/ or labs/: nbval skipped"
endif
	$(call PHASE,done)

# Regenerate the committed notebook outputs, in order, from an empty cache (the cpu profile), and
# each chapter's headline numbers in results/cpu/ (what a chapter's summary shows as the book's run),
# with Jupyter's inline plots (a non-interactive MPLBACKEND would leave the figures out); then the
# report card (REPORT.md for cpu).
book-outputs: PROFILE = cpu
book-outputs: $(STAMP)
	home="$${ALIGNLAB_HOME:-$$(mktemp -d)}"; \
	for nb in chapters/*.ipynb; do \
	  echo "== $$nb (profile $(PROFILE), ALIGNLAB_HOME=$$home)"; \
	  env -u MPLBACKEND ALIGNLAB_PROFILE=$(PROFILE) ALIGNLAB_HOME="$$home" ALIGNLAB_RESULTS="$(CURDIR)/results" \
	    $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1800 "$$nb" || exit 1; \
	  $(BIN)/alignlab quiz clear-outputs "$$nb" || exit 1; \
	done; \
	$(BIN)/alignlab report --profile $(PROFILE) --results results --out $(if $(filter cpu,$(PROFILE)),REPORT.md,results/$(PROFILE)/REPORT.md)

bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python bench/train_throughput.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/rollout.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/dpo.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/grpo.py

# Removes the environment and build artefacts; never a cache (ALIGNLAB_HOME, ./.alignlab).
clean:
	rm -rf .venv build dist *.egg-info .pytest_cache bench/out _build site/_src site/node_modules
