#!/bin/bash
# SASRec recipe sweep on the lent GPU: several `deepshelf train` runs share the one GPU.
set -u
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
LIMIT=${LIMIT:-6.3}
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
run m1-cos150 $M epochs=150
run m2-cos250 $M epochs=250
run m3-const1e-3 $M lr_schedule=constant lr=0.001 epochs=1000 patience=20
run m4-cos150-drop02 $M epochs=150 dropout=0.2
run m5-last-cos250 $M windows=last epochs=250
run m6-cos150-lr1e-3 $M epochs=150 lr=0.001
run b1-dim128 $B dim=128
run b2-cos100-lr5e-4 $B epochs=100 lr=0.0005
sleep 45; nvidia-smi | tee $OUT/smi.txt
wait
echo "all done $(awk "BEGIN{print $(date +%s.%N) - $T0}") s" | tee -a $OUT/gpu.txt
tar czf $OUT/ml1m.tgz runs-gpu/m*
tar czf $OUT/beauty.tgz runs-gpu/b*
tar czf $OUT/logs.tgz logs-gpu
grep -H -E "^args|^rc |│ valid|│ test|^training " logs-gpu/*.log | tail -60
