#!/usr/bin/env bash
# The GPU checks of the recurrent layers (issue 15), in one go: about 5 minutes on one GPU,
# under 10 in all. Run it from the checkout on a machine with CUDA and the .venv of
# scripts/setup.sh:
#
#     bash scripts/gpu_check.sh            # writes its logs to ${OUT:-gpu_check_out}/
#
# 1. the CUDA-marked tests of the models (the fused EleAtt-GRU on CUDA in float64 and float32
#    against the float64 reference, its CUDA-graph replays, the layers on CUDA): they skip
#    on a machine without CUDA, so this is where they run;
# 2. the layer benchmark, EleAtt-GRU against cuDNN nn.GRU at the five sizes, float32
#    training (forward + backward), float32 inference (forward) and bf16-autocast training,
#    first with the CUDA graphs of the time loops (the default), then without graphs (the
#    eager C++ loop) at three sizes, to show what the graphs save.
#
# Each step has its own time limit, and a failing step does not stop the next one; the exit
# status is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    if [ "$rc" -ne 0 ]; then status=1; fi
}

step environment 60 bash -c "nvidia-smi; $PYTHON - <<'EOF'
import torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
assert torch.cuda.is_available(), 'no CUDA device: nothing to check here'
print(torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())
from video_eleatt.models.gru_loop import loop_status
print('EleAtt-GRU loop:', loop_status())
EOF"
step tests 240 "$PYTHON" -m pytest -q -rs -p no:cacheprovider \
    tests/test_models_fused.py tests/test_models_layers.py -k "cuda"
step bench 300 "$PYTHON" scripts/bench_layers.py --device cuda --repeats 10
step bench_no_graphs 120 "$PYTHON" scripts/bench_layers.py --device cuda --repeats 5 \
    --no-cuda-graphs --columns train infer --sizes rgb skeleton demo
echo "logs in $OUT/"
exit $status
