#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. gcc release build, warnings as errors, every test (unit + integration)
#   2. clang build with AddressSanitizer + UndefinedBehaviorSanitizer, every test
#   3. libFuzzer smoke run of each fuzz target (FUZZ_SECONDS each, default 30)
#   4. install into a temp prefix and check pkg-config finds the library
# Ends with one line "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
export UVX_REQUIRE_SERVERS=${UVX_REQUIRE_SERVERS:-1}
passed=0
failed=0

note() { printf '\n=== %s\n' "$*"; }
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# Counts the test cases meson ran (each TAP line is a case) from its JUnit log.
count_junit() {
  local xml=$1 label=$2
  if [ ! -f "$xml" ]; then fail "$label: no test log"; return; fi
  local total fails
  total=$(grep -o '<testcase ' "$xml" | wc -l)
  fails=$(grep -oE '<(failure|error)[ >]' "$xml" | wc -l)
  passed=$((passed + total - fails))
  failed=$((failed + fails))
  echo "$label: $((total - fails)) passed, $fails failed"
}

run_build() {
  local dir=$1 label=$2; shift 2
  note "$label: configure and build"
  rm -rf "$dir"
  if ! meson setup "$dir" "$@" -Dwerror=true >"$dir.setup.log" 2>&1; then
    cat "$dir.setup.log"; fail "$label: meson setup"; return 1
  fi
  if ! ninja -C "$dir"; then fail "$label: build"; return 1; fi
  pass "$label: build (-Wall -Wextra -Werror)"
  note "$label: tests"
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 \
    --timeout-multiplier "${TIMEOUT_MULT:-1}" --no-stdsplit
  count_junit "$dir/meson-logs/testlog.junit.xml" "$label"
}

run_build build-ci-gcc "gcc release" --buildtype=release

CC=clang TIMEOUT_MULT=3 run_build build-ci-asan "clang asan+ubsan" \
  --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

note "fuzz smoke (${FUZZ_SECONDS}s per target)"
if CC=clang meson setup build-ci-fuzz -Dfuzz=true -Dintegration=false \
     -Db_sanitize=address,undefined -Db_lundef=false >build-ci-fuzz.setup.log 2>&1 &&
   ninja -C build-ci-fuzz >/dev/null; then
  for f in build-ci-fuzz/test/fuzz/fuzz_*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    name=$(basename "$f")
    if "$f" -max_total_time="$FUZZ_SECONDS" -max_len=4096 >"build-ci-fuzz/$name.log" 2>&1; then
      pass "fuzz $name ($(grep -oE '#[0-9]+' "build-ci-fuzz/$name.log" | tail -1 | tr -d '#') runs)"
    else
      tail -40 "build-ci-fuzz/$name.log"; fail "fuzz $name"
    fi
  done
else
  cat build-ci-fuzz.setup.log; fail "fuzz build"
fi

note "install + pkg-config"
prefix=$(mktemp -d)
if meson install -C build-ci-gcc --destdir "$prefix" >/dev/null &&
   pc=$(find "$prefix" -name uvxmpp.pc | head -1) && [ -n "$pc" ]; then
  # The .pc names the real prefix (/usr/local); point a copy at the staged tree.
  mkdir -p "$prefix/pc"
  sed "s|^prefix=.*|prefix=$prefix/usr/local|" "$pc" >"$prefix/pc/uvxmpp.pc"
  libdir=$(dirname "$(dirname "$pc")")
  flags=$(PKG_CONFIG_PATH=$prefix/pc pkg-config --cflags --libs uvxmpp 2>&1)
  printf '#include <uvxmpp.h>\nint main(void){return uvx_strerror(UVX_EINVAL)==0;}\n' >"$prefix/t.c"
  if [ -n "$flags" ] && cc "$prefix/t.c" -o "$prefix/t" $flags -Wl,-rpath,"$libdir" && "$prefix/t"; then
    pass "pkg-config --cflags --libs uvxmpp ($flags)"
  else
    echo "$flags"; fail "pkg-config / link against the installed library"
  fi
else
  fail "meson install"
fi
rm -rf "$prefix"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
