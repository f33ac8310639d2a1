#!/usr/bin/env bash
# Installs the Debian packages sparsetrain builds with. Safe to run again:
# it only calls apt-get when a package is missing.
set -euo pipefail

# Everything the build, the tests and the README's commands need on a minimal
# Debian 12 (scripts/fresh-machine-check.sh proves it on a new debootstrap
# root): nothing is assumed to be installed already, and packages are
# installed without their "recommends", so every one needed is listed here.
packages=(
  build-essential cmake ninja-build pkg-config
  libdnnl-dev ocl-icd-opencl-dev  # oneDNN's CMake config looks for OpenCL
  libtbb-dev libeigen3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev libpng-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libcurl4-openssl-dev libssl-dev libarchive-dev ca-certificates  # data fetch
  python3  # the tests' loopback HTTP server
  python3-dev pybind11-dev python3-numpy python3-pytest  # the Python module and its tests
  libopenmpi-dev openmpi-bin  # data-parallel training over MPI (mpirun)
  clang libclang-rt-14-dev libomp-dev  # the fuzz targets: libFuzzer, sanitizers, OpenMP
  libjs-chart.js  # the compare report's plots (inlined into the library at build time)
  chromium fonts-dejavu-core  # the compare report's browser test (headless)
)
if [ "$#" -gt 0 ]; then packages+=("$@"); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
# apt's own output goes to a log, shown only when something fails.
log=$(mktemp "${TMPDIR:-/tmp}/sparsetrain-install-deps.XXXXXX")
if ! { $SUDO apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
         "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "install-deps: apt-get failed (the lines above; whole log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "install-deps: installed ${#missing[@]} packages"
