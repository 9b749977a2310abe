#!/usr/bin/env bash
# Coverage-guided fuzzing of PATKit's parsers of untrusted input (libFuzzer + AddressSanitizer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   build and run each target (default 30 s, all targets)
#   scripts/fuzz.sh --build [TARGET...]                only build
#   scripts/fuzz.sh --make-corpus                      regenerate the committed seed corpora (Fuzz/corpus)
#   scripts/fuzz.sh --list                             list the targets
#
# Targets (Fuzz/Targets/<target>.swift): token footer claims json paserk scope revocation delta keyset signedkeyset time scan.
# Each is built with swiftc, not SwiftPM: Sources/PATKit/*.swift + Fuzz/Common.swift + the target
# file as one module named PATKit (so targets reach internal API), -sanitize=fuzzer,address -O -g,
# into .build-fuzz/bin/<target> (rebuilt only when an input changes). It then runs for the given time
# on a temporary copy of its seed corpus Fuzz/corpus/<target>/ (the committed corpus never grows)
# with Fuzz/dict/<target>.dict when present. A crash, leak, timeout, out-of-memory or violated
# invariant (the targets abort()) is saved under .build-fuzz/crashes/ and fails the run.
#
# Reproduce a finding:  .build-fuzz/bin/<target> .build-fuzz/crashes/<target>-crash-<sha1>
# FUZZ_SEED=N fixes libFuzzer's seed (CI uses it, so a CI run repeats a run made here).
# Exit status: 0 when every target ran clean, 1 when any found something, 2 on usage, build or setup
# errors (e.g. a seed corpus that cannot be copied). ASan runs with this script's options
# (leak detection on); an inherited ASAN_OPTIONS is ignored so it cannot turn checks off.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(token footer claims json paserk scope revocation delta keyset signedkeyset time scan)
OUT=.build-fuzz
SWIFTC=${SWIFTC:-swiftc}

max_len() {
    case "$1" in
        token|claims) echo 16384 ;;
        scan) echo 32768 ;;
        footer) echo 1024 ;;
        json) echo 70000 ;;
        paserk) echo 512 ;;
        scope) echo 4096 ;;
        revocation) echo 1048576 ;;
        delta) echo 65536 ;;
        keyset|signedkeyset) echo 400000 ;;
        time) echo 64 ;;
        *) echo 4096 ;;
    esac
}

die() { echo "fuzz.sh: $*" >&2; exit 2; }

is_target() { local t; for t in "${ALL_TARGETS[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

sodium_flags() {
    if command -v pkg-config >/dev/null && pkg-config --exists libsodium; then
        local flag
        for flag in $(pkg-config --libs-only-L libsodium); do printf '%s\n' "$flag"; done
    fi
    echo -lsodium
}

# build TARGET [extra swiftc flags...]: compiles into $OUT/bin/TARGET unless up to date.
build() {
    local target=$1 entry="Fuzz/Targets/$1.swift"
    [[ -f $entry ]] || die "no such target file: $entry"
    mkdir -p "$OUT/bin"
    local sources=(Sources/PATKit/*.swift Fuzz/Common.swift "$entry")
    local flags=(-module-name PATKit -package-name PATKit -parse-as-library -swift-version 6 -wmo
                 -sanitize=fuzzer,address -O -g -use-ld=lld -I Sources/CSodium $(sodium_flags))
    local stamp="$OUT/bin/$target.stamp" digest
    digest=$( { "$SWIFTC" --version 2>&1; printf '%s\n' "${flags[@]}"; cat "${sources[@]}"; } | sha256sum | cut -d' ' -f1)
    if [[ -x $OUT/bin/$target && -f $stamp && $(cat "$stamp") == "$digest" ]]; then
        echo "==> $target: up to date"
        return 0
    fi
    echo "==> building $target"
    local started=$SECONDS
    if ! "$SWIFTC" "${flags[@]}" "${sources[@]}" -o "$OUT/bin/$target" -module-cache-path "$OUT/module-cache" \
            2> >(grep -v '^$' >&2); then
        return 1
    fi
    echo "$digest" > "$stamp"
    echo "    built in $((SECONDS - started)) s"
}

make_corpus() {
    mkdir -p "$OUT/tools"
    echo "==> building the corpus generator"
    "$SWIFTC" -module-name PATKit -package-name PATKit -parse-as-library -swift-version 6 -O -I Sources/CSodium $(sodium_flags) \
        Sources/PATKit/*.swift Fuzz/Common.swift Fuzz/Tools/MakeCorpus.swift \
        -module-cache-path "$OUT/module-cache" -o "$OUT/tools/make-corpus" || die "corpus generator failed to build"
    "$OUT/tools/make-corpus" Fuzz/corpus
}

# run TARGET SECONDS: prints one summary line into $SUMMARY; returns 1 on any finding.
run() {
    local target=$1 seconds=$2
    local corpus="Fuzz/corpus/$target" work log
    mkdir -p "$OUT/crashes" "$OUT/work" "$OUT/logs"
    work=$(mktemp -d "$OUT/work/$target.XXXXXX")
    # Fuzzing from nothing would pass while testing little: a missing or uncopyable corpus is an error.
    [[ -d $corpus ]] || die "no seed corpus at $corpus"
    cp -R "$corpus/." "$work/" || die "cannot copy the seed corpus $corpus to $work"
    log="$OUT/logs/$target.log"
    local dict=()
    [[ -f Fuzz/dict/$target.dict ]] && dict=(-dict="Fuzz/dict/$target.dict")
    local before
    before=$(ls "$OUT/crashes" | grep "^$target-" | sort || true)
    echo "==> fuzzing $target for ${seconds} s (max_len $(max_len "$target"), corpus $(ls "$work" | wc -l) seeds)"
    local status=0 started=$SECONDS
    # The Swift runtime's own backtracer would intercept the abort of a violated invariant.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1:symbolize=1 \
    "$OUT/bin/$target" "$work" "${dict[@]}" \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=30 -rss_limit_mb=2048 \
        ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
        -print_final_stats=1 -artifact_prefix="$OUT/crashes/$target-" > "$log" 2>&1 || status=$?
    local elapsed=$((SECONDS - started)) execs new found
    new=$(comm -13 <(printf '%s\n' "$before") <(ls "$OUT/crashes" | grep "^$target-" | sort) | grep -v '^$' || true)
    found=$(printf '%s' "$new" | grep -c . || true)
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
    local corpus_size
    corpus_size=$(ls "$work" | wc -l)
    [[ ${FUZZ_KEEP_CORPUS:-0} == 1 ]] || rm -rf "$work"
    if (( status != 0 )) && (( found == 0 )); then found=1; fi
    printf '%-11s %12s execs %6s s %6s corpus %3d findings%s\n' "$target" "${execs:-?}" "$elapsed" "$corpus_size" \
        "$found" "$( (( status != 0 )) && echo "  (exit $status; see $log)")" | tee -a "$SUMMARY"
    if (( status != 0 )); then
        grep -E 'INVARIANT VIOLATED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|Fatal error|SUMMARY' "$log" | head -5 | sed 's/^/    /' || true
        printf '%s\n' "$new" | grep . | head -3 | sed "s|^|    reproducer: $OUT/crashes/|" || true
        return 1
    fi
    return 0
}

# ---- arguments

case "${1:-}" in
    --list) printf '%s\n' "${ALL_TARGETS[@]}"; exit 0 ;;
    --make-corpus) make_corpus; exit $? ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

build_only=0
seconds=30
if [[ ${1:-} == --build ]]; then build_only=1; shift
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then seconds=$1; shift
fi
targets=("$@")
(( ${#targets[@]} )) || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do is_target "$t" || die "unknown target '$t' (targets: ${ALL_TARGETS[*]})"; done

# Build every requested target first (one build at a time), then run them.
for t in "${targets[@]}"; do build "$t" || die "build of $t failed"; done
if (( build_only )); then exit 0; fi

SUMMARY=$(mktemp)
trap 'rm -f "$SUMMARY"' EXIT
failed=0
for t in "${targets[@]}"; do run "$t" "$seconds" || failed=1; done
echo
echo "==> summary (${seconds} s per target)"
cat "$SUMMARY"
if (( failed )); then
    echo "FAILED: findings saved under $OUT/crashes/"
    exit 1
fi
echo "no crashes, leaks, timeouts or invariant failures"
