#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer and/or ThreadSanitizer.
#
#   scripts/sanitizers.sh [address|thread|all] [--filter REGEX] [extra swift test arguments...]
#
# Each sanitizer builds in its own scratch path (.build-asan, .build-tsan) so the normal .build
# stays untouched; logs go to .build-sanitizers/. Default: all, the whole suite (each run
# builds everything with instrumentation: expect several minutes). Examples:
#
#   scripts/sanitizers.sh all --filter PATKitTests
#   scripts/sanitizers.sh thread --filter 'PATKitTests|PATRegistryTests'
#
# ThreadSanitizer runs with scripts/sanitizers/tsan_mutex_shim.c preloaded: on Linux,
# Synchronization.Mutex locks under contention inside uninstrumented code (a PI futex the
# kernel hands over), so without the shim TSan reports "races" between accesses the mutex
# does serialise. The script first checks, on a tiny Mutex-only program, that TSan is quiet
# with the shim and still catches a real race; it fails if either check does not hold.
#
# Exit status: 0 when every requested run passed with no sanitizer report, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

which=all
case "${1:-}" in
    address|thread|all) which=$1; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
sanitizers=()
case $which in
    address) sanitizers=(address) ;;
    thread) sanitizers=(thread) ;;
    all) sanitizers=(address thread) ;;
esac

OUT=.build-sanitizers
mkdir -p "$OUT"
# Leaks outside this package, each checked: nothing of PATKit or the servers is suppressed.
#  - the toolchain's XCTest runner (runs, empty, before Swift Testing): TestSuiteRun, XCTMain;
#  - swift-foundation 6.3 FileManager.contents(atPath:) leaks its 4 KiB read buffer on an empty
#    file (reproduced in a 5-line program; only tests read files this way);
#  - Foundation.Process (run, waitUntilExit) keeps weak reference boxes alive (tests that spawn `pat`);
#  - SwiftNIO's global blocking thread pool, started once and kept for the process's life.
cat > "$OUT/lsan.supp" <<'SUPP'
leak:libXCTest.so
leak:readBytesFromFile
leak:s10Foundation7ProcessC
leak:NIOThreadPool
SUPP

# Reports fail the run instead of scrolling by; the Swift runtime's backtracer stays out of
# the sanitizers' way.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/$OUT/lsan.supp:print_suppressions=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1}
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}

count_reports() {
    grep -cE '^(==[0-9]+==ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer)' "$1" || true
}

# Builds the Mutex shim and checks it on two small programs: one whose only shared state is
# behind a Mutex (must be quiet), one with a real race next to it (must be reported).
prepare_tsan_shim() {
    local clang
    clang=$(dirname "$(command -v swiftc)")/clang
    [[ -x $clang ]] || clang=clang
    "$clang" -Wall -Werror -O2 -shared -fPIC -o "$OUT/tsan_mutex_shim.so" scripts/sanitizers/tsan_mutex_shim.c -ldl || return 1
    cat > "$OUT/tsan_check.swift" <<'SWIFT'
import Synchronization
import Dispatch
final class Box: @unchecked Sendable { let m = Mutex<[Int: Int]>([:]); var unguarded = 0 }
let box = Box()
let race = CommandLine.arguments.count > 1
DispatchQueue.concurrentPerform(iterations: 8) { t in
    for i in 0..<20_000 { box.m.withLock { $0[i % 64] = t } }
    if race { for _ in 0..<1000 { box.unguarded += 1 } }
}
SWIFT
    swiftc -sanitize=thread -O -g "$OUT/tsan_check.swift" -o "$OUT/tsan_check" -module-cache-path "$OUT/module-cache" || return 1
    local quiet=0 loud
    for _ in 1 2 3; do
        LD_PRELOAD=$PWD/$OUT/tsan_mutex_shim.so "$OUT/tsan_check" > "$OUT/tsan_check.log" 2>&1
        quiet=$((quiet + $(count_reports "$OUT/tsan_check.log")))
    done
    LD_PRELOAD=$PWD/$OUT/tsan_mutex_shim.so "$OUT/tsan_check" race > "$OUT/tsan_check_race.log" 2>&1
    loud=$(count_reports "$OUT/tsan_check_race.log")
    echo "    TSan shim check: $quiet reports on Mutex-only code (want 0), $loud on a real race (want > 0)"
    (( quiet == 0 && loud > 0 ))
}

failed=0
summary=()
for s in "${sanitizers[@]}"; do
    case $s in
        address) scratch=.build-asan ;;
        thread) scratch=.build-tsan ;;
    esac
    log=$OUT/$s.log
    preload=()
    if [[ $s == thread ]]; then
        echo "==> preparing the TSan Mutex shim"
        if ! prepare_tsan_shim; then
            summary+=("thread: FAILED (the Mutex shim does not work with this toolchain; see $OUT/tsan_check*.log)")
            failed=1
            continue
        fi
        preload=(env "LD_PRELOAD=$PWD/$OUT/tsan_mutex_shim.so")
    fi
    echo "==> swift build --build-tests --sanitize=$s --scratch-path $scratch  (log: $log)"
    started=$SECONDS
    if ! swift build --build-tests --sanitize="$s" --scratch-path "$scratch" > "$log" 2>&1; then
        summary+=("$s: FAILED to build (see $log)")
        grep -E 'error:' "$log" | head -20
        failed=1
        continue
    fi
    echo "==> swift test --sanitize=$s --scratch-path $scratch $*"
    "${preload[@]}" swift test --skip-build --sanitize="$s" --scratch-path "$scratch" "$@" >> "$log" 2>&1
    status=$?
    elapsed=$((SECONDS - started))
    reports=$(count_reports "$log")
    result=$(grep -E '(✔|✘) Test run with' "$log" | tail -1)
    if (( status != 0 || reports != 0 )); then
        failed=1
        summary+=("$s: FAILED (exit $status, $reports sanitizer reports, ${elapsed}s) $result")
        grep -E -A14 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer' "$log" | head -80
        grep -E '✘|error:' "$log" | head -20
    else
        summary+=("$s: clean (${elapsed}s) $result")
    fi
done
echo
echo "==> sanitizers"
printf '%s\n' "${summary[@]}"
exit $failed
