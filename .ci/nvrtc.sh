#!/usr/bin/env bash
# .ci/nvrtc.sh: makes NVRTC 13.0 loadable for stde-cuda's NVRTC compile check (tests/nvrtc_compile.rs),
# on a machine with no GPU, driver or CUDA toolkit.
#
# NVRTC comes from PyPI's `nvidia-cuda-nvrtc` wheel, pinned to 13.0.x (newer releases emit PTX that the
# GPU machine's driver 580 rejects). It is installed into a virtualenv under target/ (once; later runs
# reuse it), and its lib directory (…/site-packages/nvidia/cu13/lib, holding libnvrtc.so.13, the name
# cudarc's loader tries, and the libnvrtc-builtins.so.13.0 that NVRTC itself dlopens) is put on
# LD_LIBRARY_PATH. cudarc has no variable for a library path: the dynamic loader's search is the way.
#
# Use from the repository root (or anywhere):
#   source .ci/nvrtc.sh                                   # exports LD_LIBRARY_PATH
#   STDE_REQUIRE_NVRTC=1 cargo test -p stde-cuda --test nvrtc_compile
# Run as a program instead (`bash .ci/nvrtc.sh`), it installs and prints the export line.

stde_nvrtc_setup() {
    local root venv lib python
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="$root/target/nvrtc-venv"
    lib="$(find "$venv" -name 'libnvrtc.so.13' -print -quit 2>/dev/null || true)"
    if [ -z "$lib" ]; then
        python="$(command -v python3 || command -v python)" || {
            echo ".ci/nvrtc.sh: python3 is needed to install the nvidia-cuda-nvrtc wheel" >&2
            return 1
        }
        mkdir -p "$root/target"
        if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
            # Without the venv module (Debian's python3-venv), a plain target directory works too.
            rm -rf "$venv"
            mkdir -p "$venv"
            "$python" -m pip install --quiet --disable-pip-version-check --target "$venv/site-packages" \
                "nvidia-cuda-nvrtc==13.0.*" || return 1
        else
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                "nvidia-cuda-nvrtc==13.0.*" || return 1
        fi
        lib="$(find "$venv" -name 'libnvrtc.so.13' -print -quit)"
        if [ -z "$lib" ]; then
            echo ".ci/nvrtc.sh: the wheel installed no libnvrtc.so.13 under $venv" >&2
            return 1
        fi
    fi
    STDE_NVRTC_LIB_DIR="$(dirname "$lib")"
    export STDE_NVRTC_LIB_DIR
    case ":${LD_LIBRARY_PATH:-}:" in
        *":$STDE_NVRTC_LIB_DIR:"*) ;;
        *) export LD_LIBRARY_PATH="$STDE_NVRTC_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    stde_nvrtc_setup
    echo "export LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH\""
else
    stde_nvrtc_setup
fi
