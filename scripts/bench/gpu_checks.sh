#!/usr/bin/env bash
# The GPU checks in one short run (under 10 minutes on one H100), for a machine lent for a few minutes.
#
#   1. env:       the card, driver, and the versions Python sees.
#   2. sft-mfu:   scripts/bench/sft.py --gpu, rows of 8k tokens (Qwen2.5-1.5B shape, bf16): tokens/s and MFU of the
#                 default attention kernel and flex_attention, one document per row and packed documents.
#   3. nano-ci:   the whole CI pipeline (recipes/nano-ci.yaml) on CUDA, with bf16, gradient checkpointing and
#                 packed SFT switched on, so every stage's device and dtype handling runs on a real GPU.
#   4. pytest:    the test suite on the CUDA machine, 8 workers (vLLM tests skip where vLLM is absent); each
#                 test's verdict is in the log even if the step runs out of time.
#
# Each step has its own time limit and log; a failed step does not stop the next (the exit status is 1 if any
# failed). Logs land in $OUT (default out/gpu-checks), at most 8 files. Packages the machine lacks can travel
# as wheels in .whl/; they are installed to /tmp/site first.
#
#   bash scripts/bench/gpu_checks.sh                  # all steps
#   STEPS="env sft-mfu" bash scripts/bench/gpu_checks.sh
#   STEPS=pytest PYTEST_TARGETS="tests/test_sft.py" bash scripts/bench/gpu_checks.sh
#   STEPS=sft-mfu MFU_ARGS="--seq-len 16384 --attn sdpa" bash scripts/bench/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-out/gpu-checks}"
STEPS="${STEPS:-env sft-mfu nano-ci pytest}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        > "$OUT/wheels.log" 2>&1 || { echo "wheel install failed:"; tail -n 20 "$OUT/wheels.log"; }
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

run_step() {   # name, limit in seconds, command...
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    echo "== $name (limit ${limit}s)"
    timeout --kill-after=10 "$limit" bash -c "$*" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "   rc=$rc after $(( SECONDS - start )) s; last lines of $OUT/$name.log:"
    tail -n "${TAIL:-15}" "$OUT/$name.log" | sed 's/^/   | /'
    [ "$rc" -eq 0 ] || FAILED+=("$name (rc $rc)")
}
FAILED=()

env_report() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "lm_eval", "math_verify", "vllm",
             "flash_attn", "liger_kernel", "deepspeed"):
    try:
        mod = importlib.import_module(name)
        print(f"{name:14s} {getattr(mod, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001 - a report, not a check
        print(f"{name:14s} absent ({type(exc).__name__})")
import torch
print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
EOF
}

sft_mfu() {
    "$PY" scripts/bench/sft.py --gpu ${MFU_ARGS:---seq-len 8192 --steps 8 --attn auto,flex_attention}
}

nano_ci() {
    local run=/tmp/distill-gpu-nano-ci
    rm -rf "$run"
    "$PY" -m distill pipeline --recipe recipes/nano-ci.yaml --out "$run" \
        --set sft.bf16=true --set sft.gradient_checkpointing=true --set sft.packing=true \
        --set grpo.bf16=true --set grpo.gradient_checkpointing=true
    local rc=$?
    cp "$run/report.md" "$OUT/nano-ci-report.md" 2>/dev/null
    return $rc
}

run_pytest() {
    local workers=$(( $(nproc) > 8 ? 8 : $(nproc) ))
    OMP_NUM_THREADS=1 "$PY" -m pytest -v -rfE --maxfail=25 --timeout=150 -p no:cacheprovider -n "$workers" ${PYTEST_TARGETS:-tests}
}

export OUT PY
export -f env_report sft_mfu nano_ci run_pytest
for step in $STEPS; do
    case $step in
        env) run_step env 45 env_report ;;
        sft-mfu) run_step sft-mfu 150 sft_mfu ;;
        nano-ci) TAIL=25 run_step nano-ci 180 nano_ci ;;
        pytest) run_step pytest 210 run_pytest ;;
        *) echo "unknown step $step (steps: env sft-mfu nano-ci pytest)"; exit 2 ;;
    esac
done
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "failed steps: ${FAILED[*]} (logs in $OUT)"
    exit 1
fi
echo "all steps passed (logs in $OUT)"
