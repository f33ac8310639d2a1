#!/usr/bin/env bash
# Installs the built library into a temporary prefix, compiles examples/c as
# C99 with -Wall -Wextra -Werror against it through pkg-config, and runs it.
#   tests/c_example.sh BUILD_DIR DATA_DIR
set -euo pipefail
source "$(dirname "$0")/install_copy.sh" "$@"
pc="$(find "$work/prefix" -name sparsetrain.pc -printf '%h')"
export PKG_CONFIG_PATH="$pc"
libdir="$(pkg-config --variable=libdir sparsetrain)"
cc -std=c99 -Wall -Wextra -Werror -pedantic "$src/examples/c/train_lenet5.c" -o "$work/train_lenet5" \
  $(pkg-config --cflags --libs sparsetrain) -Wl,-rpath,"$libdir"
out="$("$work/train_lenet5" "$data" "$work/out")"
echo "$out"
# One epoch of AC/DC to 95%: it must have learned, and every step of the
# example must have run.
acc="$(echo "$out" | sed -n 's/^reloaded from .*: test accuracy \([0-9.]*\)%.*/\1/p')"
awk -v a="$acc" 'BEGIN { exit !(a > 85.0) }'
grep -q '^refused: st_model_predict: images holds 10 elements' <<<"$out"
grep -q '^the hook saw 3 fc layers' <<<"$out"
[[ -s "$work/out/saliency-0.png" ]]
