#!/usr/bin/env bash
# Builds the browser page: compiles stde-web for wasm32 and runs wasm-bindgen into web/www/pkg/.
# Installs wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock when the
# installed one differs (the CLI and the crate must agree byte for byte on the ABI).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
if [ -z "$want" ]; then
    echo "error: no wasm-bindgen entry in Cargo.lock" >&2
    exit 1
fi
have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)"
if [ "$have" != "$want" ]; then
    echo "== installing wasm-bindgen-cli $want (found: ${have:-none})"
    # Without --locked: with it, the install fails to build here.
    cargo install wasm-bindgen-cli --version "$want"
fi

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
echo "== cargo build -p stde-web (wasm32, release)"
cargo build --release -p stde-web --target wasm32-unknown-unknown

echo "== wasm-bindgen -> web/www/pkg"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
rm -rf web/www/pkg
wasm-bindgen --target web --no-typescript --out-dir web/www/pkg \
    "$target_dir/wasm32-unknown-unknown/release/stde_web.wasm"
ls -l web/www/pkg
echo "built web/www/pkg; serve it with: cargo run --release -- web"
