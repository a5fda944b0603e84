#!/usr/bin/env bash
# The base install (`pip install sensorium`) resolves on the platforms users run it on, each with its own
# environment markers: Linux x86_64 and aarch64, Windows x64 and Apple silicon get ai-edge-litert;
# Intel macOS gets no interpreter (none ships a current wheel there) and the first use says so.
#
# Usage: bash .ci/platforms.sh   (in the venv made by .ci/install.sh; needs the PyPI index)
# pip evaluates environment markers for the machine it runs on even with --platform, so the check uses
# `uv pip install --dry-run --python-platform`, which evaluates them for the target; pip's own
# --platform dry run is shown for Windows, where the markers agree.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${SENSORIUM_VENV:-.venv}"
uv="$(command -v uv || true)"
[ -n "$uv" ] || uv="$VENV/bin/uv"
[ -x "$uv" ] || { echo "ERROR [platforms]: uv not found: install the dev extra" >&2; exit 1; }

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
rm -rf build ./*.egg-info  # setuptools would reuse a stale build/lib
python -m pip wheel --no-deps --no-build-isolation -q -w "$wheels" . 2>/dev/null
rm -rf build ./*.egg-info
wheel="$(ls "$wheels"/sensorium-*.whl)"
size=$(stat -c %s "$wheel")
echo "wheel $(basename "$wheel"): $((size / 1000000)) MB ($size bytes)" >&2
[ "$size" -le 40000000 ] || { echo "ERROR [platforms]: the wheel is over 40 MB" >&2; exit 1; }

for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-pc-windows-msvc aarch64-apple-darwin \
              x86_64-apple-darwin; do
  for py in 3.10 3.11 3.12; do
    out="$("$uv" pip install --dry-run --python-platform "$target" --python-version "$py" \
             --only-binary :all: --target "$wheels/t" "$wheel" 2>&1)" || {
      printf '%s\n' "$out" >&2
      echo "ERROR [platforms]: the base install does not resolve for $target, Python $py" >&2
      exit 1
    }
    if grep -q "ai-edge-litert" <<<"$out"; then how="with ai-edge-litert"; else
      how="no TFLite interpreter: a clear message at first use"; fi
    printf '%-26s Python %s: resolves (%s)\n' "$target" "$py" "$how" >&2
  done
done
python -m pip install --dry-run --quiet --only-binary=:all: --platform win_amd64 --python-version 3.11 \
  --target "$wheels/pip-win" "$wheel" 2>/dev/null
echo "pip --platform win_amd64 --python-version 3.11: resolves" >&2
