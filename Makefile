# Each target bootstraps .venv itself, so `make demo` and `make test` work on a
# fresh clone and are quick once the environment exists.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := pyproject.toml plugins/gta_avx512/pyproject.toml plugins/gta_cuda_tc/pyproject.toml \
           plugins/gta_rules/pyproject.toml

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./plugins/gta_avx512 \
		-e ./plugins/gta_cuda_tc -e ./plugins/gta_rules
	touch $(STAMP)

demo: install
	$(BIN)/gta demo

# On two workers (pytest-xdist: 17 min against 28 serially on CI's two cores), then the tests
# that compare timings alone: beside another worker a parallel program waits on its thread
# pool (a 64^3 GEMM took 4 ms against 82 us scalar). The second pass collects only the files
# that mark tests `timing` (collecting the whole suite took a minute of its 85 s).
TIMING_FILES = $(shell grep -rl --include='test_*.py' 'mark.timing' tests plugins)
test: install
	$(BIN)/python -m pytest -n 2 -m "not slow and not timing"
	$(BIN)/python -m pytest -m "timing and not slow" $(TIMING_FILES)

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info
