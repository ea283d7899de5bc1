#!/bin/bash
# SASRec recipe sweep on the lent GPU: several `deepshelf train` runs share the one GPU. The runs are one sweep's
# runs.sh, given as the argument; run from a copy in the repository root's .dev/ folder, as both sweeps were:
#   bash .dev/launch.sh benchmarks/results/sasrec-gpu-2026-11-28/sweep-1/runs.sh
set -u
RUNS=$(realpath "$1")
cd "$(dirname "$0")/.."
T0=$(date +%s.%N)
python3 - <<'EOF' || exit 3
import glob, tarfile, zipfile
tarfile.open(".dev/site.tar.xz").extractall("/tmp/site")
for w in glob.glob(".dev/whl/*.whl"):
    zipfile.ZipFile(w).extractall("/tmp/site")
EOF
export PYTHONPATH=/tmp/site:$PWD/src DEEPSHELF_DATA_DIR=$PWD/.dev/data PYTHONUNBUFFERED=1 \
       OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 COLUMNS=160
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
nproc | tee -a $OUT/gpu.txt
python3 -c "import torch, polars, pydantic, typer, deepshelf.runs; print('torch', torch.__version__, torch.cuda.get_device_name())" \
  2>&1 | tee -a $OUT/gpu.txt || exit 4
echo "setup $(awk "BEGIN{print $(date +%s.%N) - $T0}") s" | tee -a $OUT/gpu.txt
mkdir -p runs-gpu logs-gpu
run() {  # name config --set ...
  local name=$1 cfg=$2; shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  ( echo "start $(date +%s.%N)"; echo "args $cfg ${*}";
    python3 -m deepshelf train --out runs-gpu/$name --config configs/$cfg.toml --set device=cuda \
      --set time_limit=$LIMIT "${sets[@]}"; echo "rc $? end $(date +%s.%N)" ) > logs-gpu/$name.log 2>&1 &
}
M=sasrec-ml-1m
B=sasrec-beauty
source "$RUNS"  # LIMIT, the runs, SMI_AFTER
sleep "$SMI_AFTER"; nvidia-smi | tee $OUT/smi.txt
wait
echo "all done $(awk "BEGIN{print $(date +%s.%N) - $T0}") s" | tee -a $OUT/gpu.txt
tar czf $OUT/ml1m.tgz runs-gpu/m*
tar czf $OUT/beauty.tgz runs-gpu/b*
tar czf $OUT/logs.tgz logs-gpu
grep -H -E "^args|^rc |│ valid|│ test|^training " logs-gpu/*.log | tail -60
