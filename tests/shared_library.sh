#!/usr/bin/env bash
# libsparsetrain.so: its SONAME, the public API exported (the graph, the
# trainer, sparsetrain::Error's type information for catch clauses), nothing
# of the kernels or of the internal helpers, and nothing left undefined that
# its dependencies do not provide.
#   tests/shared_library.sh LIBRARY
set -euo pipefail
lib="$1"
fail() { echo "FAIL: $*" >&2; exit 1; }
soname="$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')"
[[ "$soname" =~ ^libsparsetrain\.so\.[0-9]+\.[0-9]+$ ]] || fail "SONAME is '$soname'"
exported="$(nm -D --defined-only -C "$lib")"
for want in 'sparsetrain::Graph::forward(' 'sparsetrain::Trainer::run(' \
    'typeinfo for sparsetrain::Error' 'sparsetrain::load_dataset(' 'sparsetrain::build_model(' \
    'sparsetrain::mpi_data_parallel(' 'st_api_version' 'st_model_create' 'st_trainer_step' 'st_probe_run'; do
  grep -qF "$want" <<<"$exported" || fail "$want is not exported"
done
if grep -E ' sparsetrain::(kernels|detail|capi)::' <<<"$exported" | head -3 | grep -q .; then
  fail "internal symbols are exported: $(grep -E ' sparsetrain::(kernels|detail|capi)::' <<<"$exported" | head -3)"
fi
if ldd -r "$lib" 2>&1 | grep -q 'undefined symbol'; then
  fail "undefined symbols: $(ldd -r "$lib" 2>&1 | grep 'undefined symbol' | head -3)"
fi
echo "$soname: $(grep -c ' sparsetrain::' <<<"$exported") sparsetrain symbols and $(grep -c ' st_' <<<"$exported") C functions exported, no kernels"
