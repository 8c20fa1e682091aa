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

# Two workers: most tests are one process's compile or tuning, so two share the two cores
# CI has (the suite takes 16 min there, 27 serially); `python -m pytest` alone runs serially.
test: install
	$(BIN)/python -m pytest -n 2

clean:
	rm -rf $(VENV) build *.egg-info plugins/*/*.egg-info
