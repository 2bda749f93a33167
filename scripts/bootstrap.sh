#!/usr/bin/env bash
# Builds (once) dmc's environment, then runs COMMAND in it. Idempotent; safe to run concurrently.
#
#   bash scripts/bootstrap.sh [COMMAND ...]     e.g. bash scripts/bootstrap.sh dmc doctor
#
# Two layers, so that a fresh clone is ready in seconds on a machine that set up dmc before:
#   1. the stack: one virtual environment with every third-party package of requirements/stack.lock
#      (torch is a 5.5 GB CUDA build) plus mmcv 2.1.0 built from source with its compiled ops.
#      It lives in $DMC_CACHE (default ~/.cache/dmc), keyed by the lock file's hash and Python version.
#      The mmcv wheel is cached separately, keyed by mmcv, torch and Python versions, because building
#      it takes about 30 minutes on 2 cores: PyPI has only mmcv's source, which needs C++20 for torch 2.13+.
#   2. the checkout: ./.venv, a thin virtual environment that sees the stack's site-packages and holds
#      only dmc itself, installed editable from this checkout.
set -euo pipefail

DMC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DMC_CACHE="${DMC_CACHE:-$HOME/.cache/dmc}"
PYTHON="${DMC_PYTHON:-python3.11}"
MMCV_VERSION="2.1.0"
LOCK="$DMC_ROOT/requirements/stack.lock"

log() { printf '[dmc setup] %s\n' "$*" >&2; }
# pip warns once per package about local index folders of this machine's pip config that lack it
quiet_pip() { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }

py_tag="$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
lock_hash="$(cat "$LOCK" "$DMC_ROOT/scripts/build_mmcv.sh" | sha256sum | cut -c1-12)"
STACK="$DMC_CACHE/stack-$py_tag-$lock_hash"
mkdir -p "$DMC_CACHE"

pip_install() {
    local python="$1"; shift
    "$python" -m pip install --quiet --disable-pip-version-check "$@" 2> >(quiet_pip >&2)
}

build_stack() {
    log "building the stack in $STACK (first time only)"
    rm -rf "$STACK"
    "$PYTHON" -m venv "$STACK"
    local pip=(pip_install "$STACK/bin/python")
    "${pip[@]}" --upgrade 'pip>=24'
    log "installing torch and the stack from requirements/stack.lock (a few minutes: torch is a CUDA build)"
    "${pip[@]}" --no-deps -r "$LOCK"
    local torch_version
    torch_version="$("$STACK/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
    local wheel_dir="$DMC_CACHE/wheels/mmcv-$MMCV_VERSION-torch$torch_version-$py_tag"
    if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VERSION with its ops for torch $torch_version (about 30 minutes on 2 cores, once per machine)"
        bash "$DMC_ROOT/scripts/build_mmcv.sh" "$STACK/bin/python" "$MMCV_VERSION" "$wheel_dir"
    fi
    "${pip[@]}" --no-deps "$wheel_dir"/mmcv-*.whl
    "$STACK/bin/python" -c 'import mmcv.ops, mmdet.models, onnxruntime, torch' \
        || { log "the stack does not import: see the errors above"; exit 1; }
    touch "$STACK/.complete"
}

if [ ! -f "$STACK/.complete" ]; then
    exec 9>"$DMC_CACHE/.setup.lock"
    flock 9
    [ -f "$STACK/.complete" ] || build_stack
    flock -u 9
fi

VENV="$DMC_ROOT/.venv"
site_of() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.dmc-stack" 2>/dev/null)" != "$STACK" ]; then
    log "creating $VENV on top of $STACK"
    rm -rf "$VENV"
    "$PYTHON" -m venv --without-pip "$VENV"
    # addsitedir (unlike a bare path line) also runs the stack's own .pth files
    printf 'import site; site.addsitedir(%s)\n' "'$(site_of "$STACK/bin/python")'" \
        > "$(site_of "$VENV/bin/python")/_dmc_stack.pth"
    echo "$STACK" > "$VENV/.dmc-stack"
fi
if [ ! -x "$VENV/bin/dmc" ] || [ "$DMC_ROOT/pyproject.toml" -nt "$VENV/bin/dmc" ]; then
    log "installing dmc from $DMC_ROOT (editable)"
    "$STACK/bin/python" -m pip --python "$VENV/bin/python" install --quiet --disable-pip-version-check \
        --no-deps --no-build-isolation -e "$DMC_ROOT" > "$VENV/install.log" 2>&1 \
        || { cat "$VENV/install.log" >&2; log "installing dmc failed: see the errors above"; exit 1; }
    touch "$VENV/bin/dmc"
fi
export PATH="$VENV/bin:$PATH"
[ "$#" -eq 0 ] || exec "$@"
