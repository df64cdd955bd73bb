#!/usr/bin/env bash
# CPU speed, side by side: `stde bench` (fast CPU backend) and ../shared/bench/jax_reference.py on the
# same problem (sine-gordon-two-body, sparse STDE, V = 16, N = 100, 4×128 tanh), each JAX run right
# after the stde run at the same dimension. Results go to bench/out/cpu/ (JSON lines).
#
#   STDE=target/release/stde JAX_PY=/path/to/venv/bin/python3 JAX_OLD_PY=/path/to/old/venv/bin/python3 \
#     bash bench/cpu.sh [DIMS…]
#
# JAX_SCRIPT: the JAX script (default ../shared/bench/jax_reference.py).
# JAX_PY: a virtualenv with `pip install "jax[cpu]" optax` (used up to 10 000 D);
# JAX_OLD_PY: one with jax 0.4.30 (see ../shared/README.md; 2.4× faster at 100 000 D and above).
set -euo pipefail
cd "$(dirname "$0")/.."
STDE=${STDE:-target/release/stde}
JAX_PY=${JAX_PY:-python3}
JAX_OLD_PY=${JAX_OLD_PY:-$JAX_PY}
OUT=${OUT:-bench/out/cpu}
mkdir -p "$OUT"
dims=("$@")
[ ${#dims[@]} -gt 0 ] || dims=(100 1000 10000 100000)
for d in "${dims[@]}"; do
    # Enough steps for a stable figure, few enough to finish in a minute or two at each size.
    case $d in
        100 | 1000) stde_steps=1000 jax_steps=300 ;;
        10000) stde_steps=300 jax_steps=60 ;;
        *) stde_steps=40 jax_steps=12 ;;
    esac
    py=$JAX_PY
    [ "$d" -ge 100000 ] && py=$JAX_OLD_PY
    echo "== d = $d"
    "$STDE" bench --backend cpu --equation sine-gordon-two-body --dim "$d" --steps "$stde_steps" \
        --warmup 10 --json "$OUT/stde.jsonl" | tee "$OUT/stde-d$d.log"
    "$py" "${JAX_SCRIPT:-../shared/bench/jax_reference.py}" --equation sine-gordon --dim "$d" --steps "$jax_steps" \
        --test-points 1000 --json "$OUT/jax-d$d.json" > "$OUT/jax-d$d.log" 2>&1
    grep -E '"(jax_version|steps_per_second|compile_seconds)"' "$OUT/jax-d$d.json"
done
