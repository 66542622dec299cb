#!/usr/bin/env bash
# The README's "Speed" block: every benchmark, side by side, on this machine.
#   tools/speed.sh > speed.md && python tools/update_readme.py speed --text-file speed.md \
#       --command "tools/speed.sh"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fence() { echo '```'; "$@"; echo '```'; echo; }

echo "**Vectorised cohorts**, the default study's students (\`bench study\`) and the"
echo "Fashion-MNIST study's (\`bench study studies/fashion_mnist.yaml --epochs 2\`):"
echo
fence "$PY" -m redistill_study bench study
fence "$PY" -m redistill_study bench study studies/fashion_mnist.yaml --epochs 2

echo "**The default study end to end** (\`run --threads 2\`), vectorised against one by one:"
echo
times=()
for engine in true false; do
    sed "s/^cohort_size: 8/cohort_size: 8\nvectorize: $engine/" studies/default.yaml \
        > "$tmp/default-$engine.yaml"
    start=$(date +%s.%N)
    "$PY" -m redistill_study run "$tmp/default-$engine.yaml" --threads 2 \
        --output "$tmp/out-$engine" --quiet > /dev/null
    end=$(date +%s.%N)
    times+=("$start" "$end")
done
python3 - "${times[@]}" <<'PYEOF'
import sys
t = list(map(float, sys.argv[1:]))
vec, seq = t[1] - t[0], t[3] - t[2]
print("| engine | wall time | |\n|---|---|---|")
print(f"| one by one (`vectorize: false`) | {seq:.0f} s | ×1.00 |")
print(f"| vectorised (the default) | {vec:.0f} s | ×{seq / vec:.2f} |")
print()
PYEOF

echo "**Throughput** (\`bench throughput\`, CIFAR-shaped synthetic data, resnet32x4 → resnet8x4):"
echo
fence "$PY" -m redistill_study bench throughput

echo "**Losses** (\`bench losses\`, forward + backward, B = 256):"
echo
fence "$PY" -m redistill_study bench losses

echo "**Claims** (\`bench claims --postgres --seconds 10\`, simulated workers on a study the size"
echo "of \`cifar100_classic.yaml\`; each loop = the scheduler's check + one claim; per unit = as it was,"
echo "one query = as it is):"
echo
fence "$PY" -m redistill_study bench claims --postgres --seconds 10
