#!/usr/bin/env bash
# The test command: installs what is missing (as root), builds, and runs
# every test suite Halfkey has:
#   1. release build (warnings are errors, banned-function check) + all tests
#   2. ASan/UBSan build + all tests
#   3. unit tests under valgrind memcheck
#   4. each libFuzzer harness for HK_FUZZ_SECONDS (default 60) on its corpus
# Integration tests talk to a real ActiveSync server: the one named by
# HALFKEY_TEST_EAS_URL & co. (see README), or else the project's own peer,
# which this script brings up (scripts/eas-peer/up.sh) and stops again.
#
#   HK_CHECK_STAGES="release asan valgrind fuzz"   which stages to run
#   HK_BUILD_ROOT=build                            where the builds go
#   HK_FUZZ_SECONDS=60                             per harness
# Ends with one line "check: N passed, M failed".
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

stages=${HK_CHECK_STAGES:-release asan valgrind fuzz}
build_root=${HK_BUILD_ROOT:-$root/build}
fuzz_secs=${HK_FUZZ_SECONDS:-60}
jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
failed_names=()

say() { printf '\n== %s\n' "$*"; }

"$root/scripts/install-deps.sh"

# Adds the counts of one ctest run (its output in $1) to the totals.
count_ctest() {
  local line p t
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -n 1 || true)
  if [ -z "$line" ]; then
    failed=$((failed + 1))
    failed_names+=("$2: no ctest summary")
    return
  fi
  t=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
  p=$(sed -E 's/.*, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$((passed + t - p))
  failed=$((failed + p))
  [ "$p" = 0 ] || failed_names+=("$2: $p failed")
}

configure_build() { # dir cmake-args...
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1 || { tail -n 60 "$dir.build.log"; return 1; }
}

run_ctest() { # name dir ctest-args...
  local name=$1 dir=$2 out
  shift 2
  out=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" 2>&1 | tee "$out" || true
  count_ctest "$out" "$name"
  rm -f "$out"
}

peer_started=
stop_peer() {
  if [ -n "$peer_started" ] && [ "${HK_KEEP_PEER:-0}" != 1 ]; then
    "$root/scripts/eas-peer/down.sh" >/dev/null 2>&1 || true
  fi
}
trap stop_peer EXIT

# The integration tests' mail server: the environment's, or our own peer.
need_peer() {
  [ -z "${HALFKEY_TEST_EAS_URL:-}" ] || return 1
  [ -x "$root/scripts/eas-peer/up.sh" ] || return 1
  ctest --test-dir "$1" -N -L integration 2>/dev/null | grep -qE 'Total Tests: [1-9]'
}
start_peer() {
  say "bringing up the project's ActiveSync peer (scripts/eas-peer/up.sh)"
  "$root/scripts/eas-peer/up.sh"
  peer_started=1
  set -a
  # shellcheck disable=SC1091
  . "${HALFKEY_PEER_STATE:-/tmp/halfkey-eas-peer}/peer.env"
  set +a
}

mkdir -p "$build_root"
for stage in $stages; do
  case $stage in
  release)
    say "release build + all tests"
    if configure_build "$build_root/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
      if need_peer "$build_root/release"; then start_peer; fi
      run_ctest release "$build_root/release"
    else
      failed=$((failed + 1)); failed_names+=("release: build failed")
    fi
    ;;
  asan)
    say "ASan/UBSan build + all tests"
    if configure_build "$build_root/asan" -DCMAKE_BUILD_TYPE=Debug -DHK_SANITIZE=ON -DHK_BENCH=OFF; then
      if [ -z "$peer_started" ] && need_peer "$build_root/asan"; then start_peer; fi
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_ctest asan "$build_root/asan"
    else
      failed=$((failed + 1)); failed_names+=("asan: build failed")
    fi
    ;;
  valgrind)
    say "unit tests under valgrind memcheck"
    if configure_build "$build_root/valgrind" -DCMAKE_BUILD_TYPE=Debug -DHK_VALGRIND=ON -DHK_BENCH=OFF; then
      run_ctest valgrind "$build_root/valgrind" -L unit
    else
      failed=$((failed + 1)); failed_names+=("valgrind: build failed")
    fi
    ;;
  fuzz)
    say "libFuzzer harnesses, ${fuzz_secs}s each"
    if configure_build "$build_root/fuzz" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DHK_FUZZ=ON -DHK_BENCH=OFF; then
      for h in "$build_root"/fuzz/fuzz/fuzz-*; do
        [ -x "$h" ] || continue
        name=${h##*/fuzz-}
        work="$build_root/fuzz/corpus-$name"
        mkdir -p "$work"
        dict=()
        [ -f "$root/fuzz/$name.dict" ] && dict=(-dict="$root/fuzz/$name.dict")
        if "$h" "${dict[@]}" -max_total_time="$fuzz_secs" -timeout=10 -rss_limit_mb=2048 \
             -artifact_prefix="$build_root/fuzz/crash-$name-" -print_final_stats=1 \
             "$work" "$root/fuzz/corpus/$name" >"$build_root/fuzz/fuzz-$name.log" 2>&1; then
          echo "fuzz-$name: $(grep -E 'stat::number_of_executed_units' "$build_root/fuzz/fuzz-$name.log" | awk '{print $2}') runs, no crash"
          passed=$((passed + 1))
        else
          tail -n 40 "$build_root/fuzz/fuzz-$name.log"
          failed=$((failed + 1)); failed_names+=("fuzz-$name: crash (see $build_root/fuzz/)")
        fi
      done
    else
      failed=$((failed + 1)); failed_names+=("fuzz: build failed")
    fi
    ;;
  *) echo "check.sh: unknown stage '$stage'" >&2; exit 2 ;;
  esac
done

echo
for n in "${failed_names[@]}"; do echo "FAILED: $n"; done
echo "check: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
