# Sourced by the tests that use an installed copy of the library
# (embed_example.sh, c_example.sh, python_example.sh) with their arguments
# BUILD_DIR DATA_DIR: sets build, data, src (the repository) and work (a
# temporary folder, removed on exit) and installs BUILD_DIR into
# $work/prefix.
build="$1"
data="$2"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
