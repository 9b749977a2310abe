#!/usr/bin/env python3
"""Runs the benchmarks once and prints the README table: every figure next to the bare
libsodium signature check measured in the same run (ratio = baseline time / time).

usage: scripts/bench-report.py [BENCHMARK_OUTPUT.txt]
  without an argument runs `swift package benchmark` in Benchmarks/ (text format) and parses its output.
"""
import os
import re
import subprocess
import sys

UNITS = {"ns": 1e-9, "μs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
SCALE = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}


def run_benchmarks():
    # The benchmarks are a package of their own, in Benchmarks/ (it depends on this one by path).
    bench_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Benchmarks")
    cmd = ["swift", "package", "--allow-writing-to-package-directory", "benchmark", "--no-progress"]
    print("running in Benchmarks/:", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=bench_dir)
    if out.returncode != 0:
        sys.exit(out.stdout[-3000:] + out.stderr[-3000:])
    return out.stdout


def parse(text):
    """{benchmark: {metric: (p50 value in base units, unit label)}}"""
    results, current = {}, None
    for line in text.splitlines():
        name = line.strip()
        if re.fullmatch(r"[a-z]+\.[A-Za-z0-9_]+", name):
            current = name
            results[current] = {}
            continue
        if current is None or not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if len(cells) < 4 or not re.match(r"^-?\d", cells[3] or ""):
            continue
        label, p50 = cells[0], float(cells[3])
        m = re.match(r"^(.*?)(?: \((ns|μs|us|ms|s)\))?(?: \(([KMG])\))?(?: \*)?$", label)
        if not m:
            continue
        metric, unit, scale = m.group(1).strip(), m.group(2), m.group(3) or ""
        m2 = re.match(r"^(.*?) \(([KMG])\)$", metric)
        if m2:
            metric, scale = m2.group(1), m2.group(2)
        value = p50 * (UNITS[unit] if unit else 1) * SCALE[scale]
        results[current][metric] = value
    return results


def fmt_time(seconds):
    for unit, factor in (("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def print_table(t, rows, rate_label, rate, ratio_label, floor, time_label="p50 time"):
    """A markdown table: each benchmark's p50 time, a rate from it, and floor time / its time."""
    print(f"| benchmark | what | {time_label} | {rate_label} | {ratio_label} | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, what, target in rows:
        v = t(name)
        if not v:
            print(f"| `{name}` | {what} | (missing) | | | {target} |")
            continue
        print(f"| `{name}` | {what} | {fmt_time(v)} | {rate(v)} | {floor / v:.3f} | {target} |")


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else run_benchmarks()
    r = parse(text)
    t = lambda b: r.get(b, {}).get("Time (wall clock)")
    base = t("baseline.libsodium_verify")
    if not base:
        sys.exit("no baseline.libsodium_verify in the output")
    rows = [
        ("baseline.libsodium_verify", "crypto_sign_verify_detached on the token's PAE message", "1 (floor)"),
        ("validate.fresh", "Validator.validate, no cache, small list", "≥ 0.93"),
        ("validate.fresh_lineage_4", "the same tokens minted four levels down (`par` with 4 ancestors, each looked up)",
         "within 2 % of fresh"),
        ("validate.revocations_1M", "the same with 1,000,000 list entries", "within 3 % of fresh"),
        ("validate.cached", "a token seen before (times, list, keys still checked)", "≥ 50"),
        ("authorize.20_scopes", "scope check on a verified PAT with 20 scopes", "—"),
        ("issue.sign", "issuing (signing) a token", "—"),
        ("baseline.libsodium_verify_all_cores", "bare libsodium on every core at once (per verification)", "—"),
        ("validate.fresh_all_cores", "fresh validations across all cores (per validation)", "≥ 1.9 × fresh"),
        ("validate.cached_all_cores", "cached validations across all cores, own tokens per thread (per validation)", "—"),
    ]
    print_table(t, rows, "per second", lambda v: f"{1 / v:,.0f}", "ratio to baseline", base)
    fresh, allc, m1 = t("validate.fresh"), t("validate.fresh_all_cores"), t("validate.revocations_1M")
    if fresh and allc:
        print(f"\nAll cores vs one core (validate.fresh): {fresh / allc:.2f} ×")
    cached, callc = t("validate.cached"), t("validate.cached_all_cores")
    if cached and callc:
        print(f"All cores vs one core (validate.cached): {cached / callc:.2f} ×")
    ball = t("baseline.libsodium_verify_all_cores")
    if ball:
        print(f"All cores vs one core (bare libsodium, same run): {base / ball:.2f} ×")
    if fresh and m1:
        print(f"1,000,000-entry list vs small list (4,096 tokens cycled, cold slots): {100 * (m1 / fresh - 1):+.1f} % time")
    deep = t("validate.fresh_lineage_4")
    if fresh and deep:
        print(f"depth-4 lineage vs root token (p50s of one run): {100 * (deep / fresh - 1):+.1f} % time")
    overhead = r.get("validate.lineage_overhead", {}).get("overhead_permille")
    if overhead is not None:
        print(f"depth-4 lineage vs root token (1,001 alternating batches, median): {overhead / 10:+.1f} %")
    small, big = t("revocations.lookup_small"), t("revocations.lookup_1M")
    if small and big:
        print(f"list lookup alone (65,536 ids cycled, half listed): {fmt_time(small)} with 10 entries, "
              f"{fmt_time(big)} with 1,000,000 ({big / small:.1f} ×)")
    for name in ("revocations.load_100k", "revocations.load_1M"):
        d = r.get(name, {})
        if d:
            # Measured, not computed: the growth of the resident set with the list held (freed
            # memory handed back to the system first), and the bytes malloc handed out while loading.
            # The benchmark prints them to 2-4 significant digits; so does this line.
            held, allocated = d.get('held_rss_bytes', 0) / 1e6, d.get('Malloc (bytes total)', 0) / 1e6
            mb = lambda v: f"{v:.1f} MB" if v < 10 else f"{v:.0f} MB"
            print(f"{name}: {fmt_time(d.get('Time (wall clock)', 0))} to read and verify, "
                  f"{d.get('file_bytes_per_entry', 0):.0f} bytes/entry on disk, "
                  f"resident set +{mb(held)} once loaded, {mb(allocated)} allocated while loading")
    cached = r.get("validate.cached", {})
    c = cached.get("cache_bytes_per_entry")
    if c:
        print(f"cache memory: about {c:.0f} bytes per cached token (charged {cached.get('cache_charged_per_entry', 0):.0f}); "
              f"with 100 scopes {cached.get('cache_bytes_per_entry_100_scopes', 0):.0f} "
              f"(charged {cached.get('cache_charged_per_entry_100_scopes', 0):.0f})")
    scan_report(t)


def scan_report(t):
    """The leak scanner: MB/s (10^6 bytes) over 16 MiB of text, next to memchr over the same bytes."""
    size = 16 * 1024 * 1024
    floor = t("baseline.memchr_16MiB")
    if not floor:
        return
    rows = [
        ("baseline.memchr_16MiB", "memchr for an absent byte: one read of the buffer", "(floor)"),
        ("scan.token_free_16MiB", "TokenScanner, text without a token", "≥ 50 MB/s"),
        ("scan.tokens_16MiB", "TokenScanner, a token every 64 KiB (256 tokens)", "—"),
        ("scan.tokens_verified_16MiB", "the same, every token verified and classified (TokenInspector)", "—"),
    ]
    print()
    print_table(t, rows, "MB/s", lambda v: f"{size / v / 1e6:,.0f}", "share of the floor's speed", floor, time_label="p50 time a pass")
    plain, verified = t("scan.tokens_16MiB"), t("scan.tokens_verified_16MiB")
    if plain and verified:
        print(f"\nverifying and classifying one found token: {fmt_time((verified - plain) / 256)}")


if __name__ == "__main__":
    main()
