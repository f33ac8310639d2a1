# Sourced by the long-measurement scripts (resnet20-acceptance.sh,
# transfer-study.sh), which set bin, data, out and the array extra.
#
# run_step NAME COMMAND ARGS...: `sparsetrain COMMAND ARGS` into $out/NAME
# with 2 threads and no progress lines, its log in $out/NAME.log, metrics in
# $out/NAME.metrics.jsonl and wall seconds in $out/NAME.wall; skipped when
# $out/NAME holds a checkpoint already (a sequence continues where it
# stopped). The arguments in ${extra[@]} go to every step.
run_step() {
  local name=$1 command=$2
  shift 2
  if [[ -f $out/$name/checkpoint.safetensors ]]; then
    echo "== $name: done before, kept"
    return
  fi
  rm -rf "${out:?}/$name"
  echo "== $name: sparsetrain $command $*"
  local start=$SECONDS
  "$bin" "$command" "$@" --data-dir "$data" --threads 2 --no-progress --out "$out/$name" \
    --metrics "$out/$name.metrics.jsonl" "${extra[@]}" 2>&1 | tee "$out/$name.log"
  echo $((SECONDS - start)) >"$out/$name.wall"
}
