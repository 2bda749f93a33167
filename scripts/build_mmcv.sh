#!/usr/bin/env bash
# Builds an mmcv wheel with its compiled (CPU) ops against the torch of the given Python.
#
#   bash scripts/build_mmcv.sh PYTHON MMCV_VERSION OUT_DIR
#
# PyPI ships mmcv only as source. Its setup.py hard-codes -std=c++14/-std=c++17, but torch 2.13+
# headers require C++20, so the flag is rewritten; setup.py also imports pkg_resources and torch,
# hence --no-build-isolation with setuptools<70 and torch already installed in PYTHON's environment.
set -euo pipefail
PY="$1"; VERSION="$2"; OUT="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# `pip download` would run setup.py to read metadata; fetch the source archive from the index directly.
"$PY" - "$VERSION" "$work" <<'PYEOF'
import re, sys, urllib.request
from pathlib import Path
version, work = sys.argv[1], Path(sys.argv[2])
index = "https://pypi.org/simple/mmcv/"
page = urllib.request.urlopen(index, timeout=120).read().decode()
links = [m for m in re.findall(r'href="([^"#]+)', page) if m.endswith(f"/mmcv-{version}.tar.gz")]
if not links:
    sys.exit(f"mmcv-{version}.tar.gz not found on {index}")
urllib.request.urlretrieve(urllib.parse.urljoin(index, links[0]), work / f"mmcv-{version}.tar.gz")
PYEOF
tar -xzf "$work/mmcv-$VERSION.tar.gz" -C "$work"
src="$work/mmcv-$VERSION"
sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$src/setup.py"
grep -q -- '-std=c++20' "$src/setup.py" || { echo "mmcv setup.py: C++ standard flag not found" >&2; exit 1; }

mkdir -p "$OUT.partial"
( cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" FORCE_CUDA="${FORCE_CUDA:-0}" \
    "$PY" -m pip wheel --disable-pip-version-check --no-deps --no-build-isolation -w "$OUT.partial" . )
rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
echo "mmcv wheel: $(ls "$OUT"/mmcv-*.whl)"
