#!/usr/bin/env bash
# The GPU check, for a machine with a CUDA device (CI has none): the CUDA tests (test/cuda), the bench on
# the GPU in fp32 and fp16 (torch backend), and the demo with its bag segmented on the GPU (device: auto).
# Needs a python3 with a CUDA build of torch and the package's dependencies. Logs go to $OUT
# (default out/gpu_check); exit 1 if any step failed.
#   usage: bash test/cuda/gpu_check.sh        (PYTHON=... for another interpreter, LIMIT=... seconds a step)
set -uo pipefail
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
status=0

step() {  # step NAME COMMAND...: run it under the time limit, log to $OUT/NAME.log
    local name=$1 rc
    shift
    echo "== $name: $*"
    timeout "${LIMIT:-300}" "$@" 2>&1 | tee "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc"
    [ "$rc" = 0 ] || status=1
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $py -c "import sys, torch, onnxruntime, cv2, numba
print('python', sys.version.split()[0], '| torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU', '| onnxruntime',
      onnxruntime.__version__, onnxruntime.get_available_providers(), '| opencv', cv2.__version__,
      '| numba', numba.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

step cuda_tests $py -m pytest -q -s -m cuda test/cuda -p no:cacheprovider
half_config=config/.gpu_check_half.yaml  # beside the shipped config: its weight paths are relative
sed 's/^  half: false /  half: true  /' config/swiftnet_r18.yaml > "$half_config"
step bench_fp32 $py -m gsvnet_ros.cli.bench --config config/swiftnet_r18.yaml --device cuda --backends torch \
    --no-macs --json "$OUT/bench_fp32.json"
step bench_fp16 $py -m gsvnet_ros.cli.bench --config "$half_config" --device cuda --backends torch \
    --no-macs --json "$OUT/bench_fp16.json"
rm -f "$half_config"
demo=$(mktemp -d)
step demo $py -m gsvnet_ros.cli.demo --out "$demo"
cp "$demo/report.json" "$OUT/demo_report.json" 2>/dev/null
rm -rf "$demo"
exit $status
