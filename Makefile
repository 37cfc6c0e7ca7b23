# The two commands of the README. Each creates .venv and installs into it when needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.convbench-installed
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k conv2d"`.
PYTEST_ARGS ?=
# Arguments for `convbench run`, e.g. `make run RUN_ARGS="--budget 120"`.
RUN_ARGS ?=

.PHONY: run test install clean

install: $(STAMP)

# PyTorch's index of CPU-only wheels. constraints.txt pins a CPU build of torch (`+cpu`), which
# PyPI does not have: pip takes it from a local wheel where its configuration names one
# (find-links, PIP_FIND_LINKS), and from this index otherwise.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIN   := $(shell grep -m1 '^torch' constraints.txt)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch first, from the sources pip is configured with; PyTorch's index only when they have no
	@# such build (so a machine with a local wheel never waits on a network it may not reach)
	@$(BIN)/python -m pip install --quiet -c constraints.txt torch 2>/dev/null || { \
	  echo "$(TORCH_PIN) is not where pip looks; installing it from $(TORCH_INDEX)"; \
	  $(BIN)/python -m pip install --quiet -c constraints.txt --extra-index-url $(TORCH_INDEX) torch || { \
	    echo "could not install $(TORCH_PIN): put its wheel in a directory DIR and run PIP_FIND_LINKS=DIR make $(MAKECMDGOALS)" >&2; \
	    exit 1; }; }
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# valgrind (for `convbench bench --metric instructions`): installed where missing and apt and
	@# root are at hand; elsewhere the metric says how to get it
	@command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get update -qq && apt-get install -y -qq valgrind; } >/dev/null 2>&1; } || echo "note: valgrind not installed (only --metric instructions needs it)"
	touch $@

run: $(STAMP)
	$(BIN)/convbench run $(RUN_ARGS)

# pytest exits 5 when it collects nothing: with a selection that is a message, not a failure;
# without one it means the suite vanished, which fails.
test: $(STAMP)
	@$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  echo "pytest collected no tests$(if $(PYTEST_ARGS), for '$(PYTEST_ARGS)',)"; \
	  if [ -n "$(PYTEST_ARGS)" ]; then exit 0; else exit 1; fi; \
	fi; exit $$rc

clean:
	rm -rf $(VENV) convbench-report .pytest_cache .hypothesis .benchmarks
