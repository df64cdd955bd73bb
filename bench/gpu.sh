#!/usr/bin/env bash
# bench/gpu.sh: the CUDA backend's checks and benchmarks on the GPU machine (NVIDIA H100/H200, CUDA 13
# under /usr/local/cuda, Python with JAX (CUDA) and optax, and no Rust toolchain).
#
# Build step, on a machine with Rust, from the repository root:
#     bash bench/build-gpu-bundle.sh        # → target/gpu-bundle/ (release binaries + manifest.env)
# then carry target/gpu-bundle/ to the GPU machine and run, from the repository root there:
#     bash bench/gpu.sh [SECTION…]
# Sections, in the order `all` (the default) runs them; each fits one 10-minute command on an H100:
#     info         the GPU, driver and toolkit (nvidia-smi) → machine.txt
#     conformance  stde-cuda's conformance suite with STDE_REQUIRE_CUDA=1 (a missing GPU fails)
#                  and the NVRTC compile check with the toolkit's NVRTC → *.log
#     bench        `stde bench --backend cuda` at d = 1 000, 100 000, 1 000 000 (V=16, N=100, 4×128
#                  tanh, sine-gordon-two-body) → bench-cuda-d*.json/.csv/.log
#     train        full 10 000-step runs at d = 1 000 000: sine-gordon- and allen-cahn-two-body
#                  → train-*/ (the CLI's run directory) and train-*.log with the wall time
#     big          d = 10 000 000 (bench, fewer steps) → bench-cuda-d10000000.*
#     jax          ../shared/bench/jax_reference.py on the same problems (timed steps only)
#                  → jax-*.json/.log
#     summary      steps/s of stde-cuda and JAX side by side → summary.csv
# Everything goes under $OUT (set by the device tool), else bench/out/. Environment knobs:
# BENCH_STEPS (default 300), BIG_STEPS (50), TRAIN_STEPS (10000), JAX_STEPS (120), JAX_TIMED (100),
# JAX_DIMS ("1000 100000 1000000"; add 10000000 to try JAX there: its dense one-hot probes alone need
# N·V·d·4 = 64 GB, so expect it to run out of memory).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
BUNDLE="${BUNDLE:-target/gpu-bundle}"
if [ ! -f "$BUNDLE/manifest.env" ]; then
    echo "gpu.sh: $BUNDLE/manifest.env is missing: run bash bench/build-gpu-bundle.sh on a Rust machine and carry $BUNDLE" >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$BUNDLE/manifest.env"
STDE="$BUNDLE/$STDE_BIN"
CONFORMANCE="$BUNDLE/$CONFORMANCE_BIN"
NVRTC_TEST="$BUNDLE/$NVRTC_TEST_BIN"

CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
# cudarc loads libcublas.so.13 and libnvrtc.so.13 by name at run time; the driver's libcuda.so.1 is on
# the system path already.
export LD_LIBRARY_PATH="$CUDA_HOME/lib64:$CUDA_HOME/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

BENCH_STEPS="${BENCH_STEPS:-300}"
BIG_STEPS="${BIG_STEPS:-50}"
TRAIN_STEPS="${TRAIN_STEPS:-10000}"
JAX_STEPS="${JAX_STEPS:-120}"
JAX_TIMED="${JAX_TIMED:-100}"
JAX_DIMS="${JAX_DIMS:-1000 100000 1000000}"
# The paper's setup (STDE.md §4): 4 linear layers of width 128, tanh, N = 100, V = 16, sparse STDE.
COMMON=(--backend cuda --batch 100 --rand-dims 16 --width 128 --depth 4 --estimator sparse)

status=0
note() { echo "[gpu.sh $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/gpu.log"; }
run() {
    # run NAME CMD…: CMD's output to $OUT/NAME.log, its exit code and wall time to gpu.log.
    local name="$1"
    shift
    local t0 t1 rc
    t0=$(date +%s.%N)
    "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    note "$name: exit $rc in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s: $*"
    [ "$rc" -eq 0 ] || status=1
    return "$rc"
}

jax_script() {
    for f in ../shared/bench/jax_reference.py shared/bench/jax_reference.py "$BUNDLE/jax_reference.py"; do
        if [ -f "$f" ]; then
            echo "$f"
            return 0
        fi
    done
    return 1
}

section_info() {
    {
        echo "bundle: commit $BUNDLE_COMMIT built $BUNDLE_BUILT_AT with $BUNDLE_RUSTC"
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
        nvidia-smi
        ls "$CUDA_HOME"/lib64/libnvrtc.so* "$CUDA_HOME"/lib64/libcublas.so* 2>&1
        cat "$CUDA_HOME/version.json" 2>/dev/null | head -20
        python3 -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1
    } >"$OUT/machine.txt" 2>&1
    note "info: $(head -2 "$OUT/machine.txt" | tail -1)"
}

section_conformance() {
    STDE_REQUIRE_CUDA=1 run conformance "$CONFORMANCE" --test-threads=4
    STDE_REQUIRE_NVRTC=1 run nvrtc_compile "$NVRTC_TEST" --nocapture
}

bench_dim() {
    local d="$1" steps="$2"
    run "bench-cuda-d$d" "$STDE" bench "${COMMON[@]}" --equation sine-gordon-two-body --dim "$d" \
        --steps "$steps" --json "$OUT/bench-cuda-d$d.json" --csv "$OUT/bench-cuda-d$d.csv"
}

section_bench() {
    for d in 1000 100000 1000000; do
        bench_dim "$d" "$BENCH_STEPS"
    done
}

section_train() {
    for eq in sine-gordon-two-body allen-cahn-two-body; do
        rm -rf "$OUT/train-$eq-d1000000"
        run "train-$eq-d1000000" "$STDE" train "${COMMON[@]}" --equation "$eq" --dim 1000000 \
            --steps "$TRAIN_STEPS" --out "$OUT/train-$eq-d1000000"
    done
}

section_big() {
    bench_dim 10000000 "$BIG_STEPS"
}

section_jax() {
    local script
    if ! script="$(jax_script)"; then
        note "jax: jax_reference.py not found (../shared/bench, shared/bench or the bundle)"
        status=1
        return
    fi
    for d in $JAX_DIMS; do
        run "jax-sine-gordon-d$d" python3 "$script" --equation sine-gordon --dim "$d" --batch 100 \
            --rand-dims 16 --width 128 --depth 4 --steps "$JAX_STEPS" --timed-steps "$JAX_TIMED" \
            --test-points 1000 --json "$OUT/jax-sine-gordon-d$d.json"
    done
    run "jax-allen-cahn-d1000000" python3 "$script" --equation allen-cahn --dim 1000000 --batch 100 \
        --rand-dims 16 --width 128 --depth 4 --steps "$JAX_STEPS" --timed-steps "$JAX_TIMED" \
        --test-points 1000 --json "$OUT/jax-allen-cahn-d1000000.json"
}

section_summary() {
    python3 - "$OUT" <<'PY' | tee "$OUT/summary.csv"
import json, os, sys
out = sys.argv[1]
def rate(path):
    try:
        with open(os.path.join(out, path)) as fh:
            return json.load(fh).get("steps_per_second")
    except (OSError, ValueError):
        return None
print("dim,stde_cuda_steps_per_s,jax_steps_per_s,stde_over_jax")
for d in (1000, 100000, 1000000, 10000000):
    s = rate(f"bench-cuda-d{d}.json")
    j = rate(f"jax-sine-gordon-d{d}.json")
    ratio = f"{s / j:.2f}" if s and j else ""
    print(f"{d},{s or ''},{j or ''},{ratio}")
PY
}

sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(all)
for s in "${sections[@]}"; do
    case "$s" in
        all)
            section_info
            section_conformance
            section_bench
            section_train
            section_big
            section_jax
            section_summary
            ;;
        info | conformance | bench | train | big | jax | summary) "section_$s" ;;
        *)
            echo "gpu.sh: unknown section $s" >&2
            exit 2
            ;;
    esac
done
note "done: exit $status (logs and results in $OUT)"
exit "$status"
