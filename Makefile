# Two entry points for a fresh machine; each sets up .venv first, only when needed
# (the venv is rebuilt when pyproject.toml or constraints.txt changes).
#   make demo   run the main job on the built-in synthetic demo dataset
#   make test   run the linter and the whole test suite (what CI runs)
#   make quick  the inner loop: the linter and the tests that do not run Ray end to end
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test quick setup lock

demo: $(STAMP)
	$(VENV)/bin/raycells cv --folds 5

# Two test processes (pytest-xdist), each with its own Ray cluster: on 2 cores the suite's waits
# for Ray then overlap with the other process's work (measured; more processes only add Ray
# clusters competing for the same cores). Work stealing: each process starts with its half of the
# tests (tests/conftest.py deals them) and an idle one takes tests still queued on the other.
test: $(STAMP)
	$(VENV)/bin/ruff check raycells tests benchmarks
	$(VENV)/bin/python -m pytest -n 2 --dist worksteal

quick: $(STAMP)
	$(VENV)/bin/ruff check raycells tests benchmarks
	$(VENV)/bin/python -m pytest -n 2 --dist worksteal -m "not slow"

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "Setting up $(VENV) with the pinned dependencies (a few minutes, only when they change)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --constraint constraints.txt --editable '.[test,ui]'
	touch $(STAMP)

# Refresh constraints.txt from the current venv after changing dependencies on purpose.
lock: $(STAMP)
	$(VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^raycells' > constraints.txt
	touch $(STAMP)
