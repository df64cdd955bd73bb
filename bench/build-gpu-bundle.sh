#!/usr/bin/env bash
# bench/build-gpu-bundle.sh: builds, on a machine with Rust, everything bench/gpu.sh runs on the GPU
# machine (which has CUDA 13 under /usr/local/cuda and Python/JAX, but no Rust toolchain).
#
# Produces target/gpu-bundle/ (release x86_64 binaries, debug info stripped to keep the bundle small):
#   bin/stde                 the CLI (`stde bench|train --backend cuda …`)
#   bin/conformance          stde-cuda's conformance suite (tests/conformance.rs)
#   bin/nvrtc_compile        the NVRTC compile check (tests/nvrtc_compile.rs), run there with the
#                            toolkit's own NVRTC
#   jax_reference.py         a copy of ../shared/bench/jax_reference.py, used if shared/ is absent
#   manifest.env             paths and build facts, sourced by bench/gpu.sh
# Then carry target/gpu-bundle to the GPU machine and run `bash bench/gpu.sh` from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
bundle="$root/target/gpu-bundle"
rm -rf "$bundle"
mkdir -p "$bundle/bin"

cargo build --release -p stde-cli --bin stde
# The test executables' names carry a hash: take them from cargo's JSON messages.
cargo test -p stde-cuda --release --no-run --message-format=json 2>/dev/null >"$bundle/cargo-test.json"
find_test() {
    python3 - "$bundle/cargo-test.json" "$1" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
for line in open(path):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
            and msg["target"]["name"] == name and "test" in msg["target"]["kind"]:
        print(msg["executable"])
        break
PY
}
for t in conformance nvrtc_compile; do
    exe="$(find_test "$t")"
    if [ -z "$exe" ]; then
        echo "build-gpu-bundle: no test executable named $t" >&2
        exit 1
    fi
    cp "$exe" "$bundle/bin/$t"
done
rm -f "$bundle/cargo-test.json"
cp target/release/stde "$bundle/bin/stde"
for f in "$bundle"/bin/*; do
    strip --strip-debug "$f" 2>/dev/null || true
done
if [ -f ../shared/bench/jax_reference.py ]; then
    cp ../shared/bench/jax_reference.py "$bundle/jax_reference.py"
fi
{
    echo "# Written by bench/build-gpu-bundle.sh; sourced by bench/gpu.sh. Paths are relative to this file."
    echo "STDE_BIN=bin/stde"
    echo "CONFORMANCE_BIN=bin/conformance"
    echo "NVRTC_TEST_BIN=bin/nvrtc_compile"
    echo "BUNDLE_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo -dirty)"
    echo "BUNDLE_BUILT_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "BUNDLE_RUSTC=\"$(rustc --version)\""
} >"$bundle/manifest.env"
du -sh "$bundle"
ls -l "$bundle/bin"
# The GPU machine's glibc must be at least this (the binaries link nothing else but libc, libm, libgcc).
for f in "$bundle"/bin/*; do
    echo "$(basename "$f") needs $(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -V -u | tail -1)"
done
