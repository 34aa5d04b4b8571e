#!/usr/bin/env bash
# The checks a CPU machine cannot make, for a CUDA machine with this repository's requirements:
# the CUDA tests (mamba-ssm's kernel against our scan, where mamba-ssm is installed), MDAF on the
# default synthetic set in float32 and in bf16 on the GPU.
#   bash benchmarks/gpu_checks.sh [OUT_DIR]        # writes OUT_DIR/gpu_checks.txt (default results/gpu_checks)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/gpu_checks}
mkdir -p "$out"
log="$out/gpu_checks.txt"
: > "$log"
say() { echo "$*" | tee -a "$log"; }

say "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1 | tee -a "$log"
python3 -c "import mamba_ssm; print('mamba-ssm', mamba_ssm.__version__)" 2>&1 | tail -1 | tee -a "$log"

say "== CUDA tests (tests/test_mamba_cuda.py skips without mamba-ssm)"
python3 -m pytest -q -p no:cacheprovider tests/test_mamba_cuda.py tests/test_selective_scan.py tests/test_mamba.py \
    tests/test_recipe.py -k "cuda or device or backend or mamba" 2>&1 | tail -4 | tee -a "$log"

exp=$(mktemp --suffix .yaml)
device=cuda
for bf16 in false true; do
    cat > "$exp" <<YAML
experiment: gpu_check
label: MDAF-Full
model: configs/model/mdaf.yaml
train: {base: configs/train/v3.yaml, bf16: $bf16, epochs: 2, patience: 8}
data: {source: taobao_ad, min_count: {item: 10}, synthetic: {n_users: 4000}}
synthetic_train: {seq_len: 20}
YAML
    say "== MDAF, default synthetic set, 2 epochs, device $device, bf16 $bf16"
    began=$(date +%s.%N)
    python3 experiments/train_mdaf.py --config "$exp" --device "$device" --run-name "mdaf-$device-bf16-$bf16" \
        --results-dir "$out/runs" > "$out/mdaf-$device-bf16-$bf16.log" 2>&1
    status=$?
    ended=$(date +%s.%N)
    python3 - "$out/runs/mdaf-$device-bf16-$bf16/summary.json" "$status" "$began" "$ended" <<'PY' 2>&1 | tee -a "$log"
import json, sys
path, status, began, ended = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
if status:
    print(f"exit status {status}: see the run's log beside this file")
else:
    s = json.load(open(path))
    e = s["efficiency"]
    print(f"test AUC {s['test']['auc']:.4f}, best val AUC {s['train']['best_val']:.4f}, {e['seconds_per_epoch']:.1f} s/epoch, "
          f"{e['train_samples_per_s']:.0f} train samples/s, peak {e['peak_memory_mb']:.0f} MB on {e['device']}, "
          f"{ended - began:.0f} s in all")
PY
    grep -m1 "selective scan: back-end" "$out/mdaf-$device-bf16-$bf16.log" | sed 's/.*INFO //' | tee -a "$log"
done
rm -f "$exp"
