# Every target installs what it needs into .venv first, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=egl $(VENV)/bin/crossover demo

test: $(STAMP)
	$(VENV)/bin/ruff check --select F,E9 crossover tests benchmarks
	MUJOCO_GL=egl $(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/collect_throughput.py
	$(PY) benchmarks/agent_speed.py

clean:
	rm -rf $(VENV) build *.egg-info
