# Sourced by the long-measurement scripts (resnet20-acceptance.sh,
# transfer-study.sh, compare-study.sh, probe-examples.sh).
#
# study_setup DEFAULT_OUT: installs the packages and builds sparsetrain
# unless $BIN names a binary; sets bin, data ($SPARSETRAIN_DATA_DIR or
# ../shared/data) and out ($OUT or DEFAULT_OUT), and makes the folder.
study_setup() {
  if [[ -z ${BIN:-} ]]; then
    scripts/install-deps.sh
    scripts/build.sh release sparsetrain
  fi
  bin="${BIN:-build/release/sparsetrain}"
  data="${SPARSETRAIN_DATA_DIR:-../shared/data}"
  out="${OUT:-$1}"
  mkdir -p "$out"
}

# The rest is for scripts that set bin, data, out and the array extra.
#
# run_step NAME COMMAND ARGS...: `sparsetrain COMMAND ARGS` into $out/NAME
# with 2 threads and no progress lines, its log in $out/NAME.log, metrics in
# $out/NAME.metrics.jsonl and wall seconds in $out/NAME.wall. A step whose
# metrics end with the run's "end" event is kept; one that was stopped (a
# checkpoint but no end) is resumed with --resume, so a sequence continues
# where it stopped. The arguments in ${extra[@]} go to every new step.
run_step() {
  local name=$1 command=$2
  shift 2
  local metrics=$out/$name.metrics.jsonl
  if [[ -f $metrics ]] && grep -q '"event":"end"' "$metrics"; then
    echo "== $name: done before, kept"
    return
  fi
  local start=$SECONDS
  if [[ -f $out/$name/checkpoint.safetensors ]]; then
    echo "== $name: resuming $out/$name"
    "$bin" "$command" --resume "$out/$name" --no-progress 2>&1 | tee -a "$out/$name.log"
  else
    rm -rf "${out:?}/$name"
    echo "== $name: sparsetrain $command $*"
    "$bin" "$command" "$@" --data-dir "$data" --threads 2 --no-progress --out "$out/$name" \
      --metrics "$metrics" "${extra[@]}" 2>&1 | tee "$out/$name.log"
  fi
  echo $((SECONDS - start)) >>"$out/$name.wall"
}
