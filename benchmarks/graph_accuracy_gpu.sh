#!/usr/bin/env bash
# The accuracy half of benchmarks/graph.py on one GPU machine, three processes side by side
# (Cora | CiteSeer | the three graph-level sets), each under a time limit. Merge the results
# with `python benchmarks/graph_merge.py OUT/*/graph_accuracy_partial.json`, then add the CPU
# speed section here with `python benchmarks/graph.py --data-root ../shared/data --skip-accuracy`.
# Usage: benchmarks/graph_accuracy_gpu.sh DATA_ROOT OUT_DIR [SECONDS]
set -u
root=$1 out=$2 limit=${3:-500}
export OMP_NUM_THREADS=5 PYTHONUNBUFFERED=1
run() {  # name, datasets...
    local name=$1; shift
    mkdir -p "$out/$name"
    timeout "$limit" python3 benchmarks/graph.py --data-root "$root" --skip-speed --accelerator gpu \
        --datasets "$@" --out "$out/$name" >"$out/$name.log" 2>&1
    echo "$name exit $?"
}
run cora cora &
run citeseer citeseer &
run graphs mutag ptc_mr imdb-binary &
wait
