#!/usr/bin/env bash
# Runs the README's two commands on a brand-new minimal Debian 12, as a
# stranger would paste them: makes a root with `debootstrap --variant=minbase`
# from the Debian sources this machine's apt already uses, copies the
# committed tree (git archive HEAD) and ../shared/data into it at the same
# relative places, mounts what a chroot needs, and runs each command there
# with a clean environment. Reports each command's exit status and time, and
# leaves nothing mounted, also when interrupted. Needs root.
#
#   scripts/fresh-machine-check.sh            the test command, then the main command
#   scripts/fresh-machine-check.sh main       only the main command (or: test)
#   KEEP_FRESH_ROOT=1 scripts/...             keep the root (printed) for a look
#   FRESH_ROOT_BASE=/var/tmp                  where the root is made
#
# Exit status: 0 when every command exited 0.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

say() { echo "fresh-machine-check: $*"; }
die() { say "error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, mount and chroot)"
data="$repo/../shared/data"
[ -d "$data" ] || die "no datasets at $data (the tree's ../shared/data)"
command -v git >/dev/null || die "git is needed to take the committed tree (git archive HEAD)"
git -C "$repo" rev-parse --verify -q HEAD >/dev/null || die "$repo is not a git checkout with commits"

which_commands=("${@:-test main}")
# shellcheck disable=SC2206
which_commands=(${which_commands[*]})

# The README's two commands: the first ```sh block, one command per line,
# comments stripped. The first is the main job, the second runs the tests.
mapfile -t readme_cmds < <(awk '/^```sh$/ {inside=1; next} inside && /^```/ {exit}
  inside {sub(/[ \t]*#.*$/, ""); if (length($0)) print}' README.md)
[ "${#readme_cmds[@]}" -eq 2 ] || die "README.md's first sh block should hold exactly two commands, found ${#readme_cmds[@]}"
main_cmd=${readme_cmds[0]}
test_cmd=${readme_cmds[1]}

# Leftovers of a run that was killed outright (no trap runs on SIGKILL).
base=${FRESH_ROOT_BASE:-/var/tmp}
for stale in $(findmnt -rn -o TARGET | grep -E "^$base/sparsetrain-fresh\.[^/]+/root" | sort -r || true); do
  say "unmounting $stale, left by an earlier run"
  umount -l "$stale" || true
done

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap on this machine"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The Debian archives apt already uses here (never a hard-coded address).
mapfile -t sources < <(apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' \
  'Created-By: Packages' 2>/dev/null | grep -E ' bookworm(-[a-z]+)? ' | sort -u)
[ "${#sources[@]}" -gt 0 ] || die "apt has no bookworm sources configured (apt-get indextargets)"
mirror=""
for s in "${sources[@]}"; do
  read -r site release _ <<<"$s"
  if [ "$release" = bookworm ]; then mirror=$site; break; fi
done
[ -n "$mirror" ] || die "apt has no source for the bookworm release itself"

work=$(mktemp -d "$base/sparsetrain-fresh.XXXXXX")
root="$work/root"
log="$work/debootstrap.log"

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -d "$root" ]; then
    # Processes still running inside (a test's server, say) keep mounts busy.
    for p in /proc/[0-9]*; do
      if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then kill -9 "${p#/proc/}" 2>/dev/null || true; fi
    done
    for m in $(findmnt -rn -o TARGET | grep -E "^$root(/|$)" | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" || say "could not unmount $m"
    done
    if findmnt -rn -o TARGET | grep -qE "^$root(/|$)"; then
      say "still mounted under $root: not removing it"
      status=1
    elif [ "${KEEP_FRESH_ROOT:-0}" = 1 ]; then
      say "kept the root at $root"
    else
      rm -rf --one-file-system "$work"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM HUP

t0=$(date +%s)
say "debootstrap --variant=minbase bookworm from $mirror into $root"
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log" 2>&1; then
  tail -20 "$log" >&2
  die "debootstrap failed (log above)"
fi
say "fresh root made in $(( $(date +%s) - t0 )) s"

# apt inside sees the same archives as this machine; DNS as this machine.
rm -f "$root/etc/apt/sources.list"
for s in "${sources[@]}"; do
  read -r site release component <<<"$s"
  echo "deb $site $release $component"
done >"$root/etc/apt/sources.list.d/host.list"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"

# The committed tree and the datasets, at the same relative places, the
# datasets read-only as they are here.
home="$root/home/stranger"
mkdir -p "$home/sparsetrain" "$home/shared"
git -C "$repo" archive HEAD | tar -x -C "$home/sparsetrain"
cp -r "$data" "$home/shared/data"
chmod -R a-w "$home/shared"

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount -t devtmpfs -o mode=0755,nosuid udev "$root/dev"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"

run_in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /home/stranger/sparsetrain && $1"
}

overall=0
summary=()
run_log="$work/run.log"
for which in "${which_commands[@]}"; do
  case "$which" in
    main) cmd=$main_cmd ;;
    test) cmd=$test_cmd ;;
    *) die "unknown command '$which' (expected test or main)" ;;
  esac
  say "running the README's $which command: $cmd"
  start=$(date +%s)
  # In the background so that a signal to this script is handled at once
  # (bash runs traps only between foreground commands).
  set +e
  ( run_in_root "$cmd" 2>&1 | tee -a "$run_log"; exit "${PIPESTATUS[0]}" ) &
  wait $!
  status=$?
  set -e
  secs=$(( $(date +%s) - start ))
  summary+=("$which command ($cmd): exit $status in ${secs} s")
  say "$which command: exit $status in ${secs} s"
  [ "$status" -eq 0 ] || overall=1
done

say "summary (fresh Debian 12 minbase root, $(( $(date +%s) - t0 )) s in all):"
for line in "${summary[@]}"; do say "  $line"; done
# ctest's own summaries, added up over the presets, as one closing line.
passed=0; failed=0
while read -r total_failed total; do
  failed=$((failed + total_failed)); passed=$((passed + total - total_failed))
done < <(sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests failed out of ([0-9]+)$/\1 \2/p' "$run_log")
if grep -qE 'tests failed out of' "$run_log"; then echo "tests: $passed passed, $failed failed"; fi
exit "$overall"
