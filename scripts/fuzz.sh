#!/usr/bin/env bash
# Fuzzes Auscult's readers of untrusted input with libFuzzer + AddressSanitizer:
#   scripts/fuzz.sh [--seconds 600] [TARGET...]     (default: every target, 600 s each)
# Targets (Sources/_TestSupport/FuzzTargets.swift): safetensors ctranslate2 pytorch hf-config
# sae-config sae-weights manifest condition. Each starts from Fuzz/seeds/TARGET plus the corpus
# earlier runs grew (.build-fuzz/corpus/TARGET). An input that crashes, reads out of bounds,
# allocates over 2 GB or runs over 20 s is written to Fuzz/crashes/TARGET/: fix the reader, move
# the input to Fuzz/regressions/TARGET/ (the tests replay every file there), and commit it.
# Ends with a table: executions, corpus size and crashes per target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(safetensors ctranslate2 pytorch hf-config sae-config sae-weights manifest condition)
scripts/setup.sh
swift build -c release --product auscult-fuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DAUSCULT_FUZZ >&2
bin=.build-fuzz/release/auscult-fuzz
summary=()
for t in "${targets[@]}"; do
  corpus=.build-fuzz/corpus/$t crashes=Fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  log=.build-fuzz/$t.log
  echo "fuzz: $t for ${seconds}s (log $log)" >&2
  # libFuzzer stops at the first crash; -fork would go on, but one finding at a time is fixed anyway.
  # The kill timer backs up -max_total_time should a run hang in the sanitizer's report.
  set +e
  # Swift's own crash reporter would read the crashed process's memory under the sanitizer; the
  # leak check at exit reports the process's lasting caches, not a reader's fault.
  ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no AUSCULT_FUZZ_TARGET=$t timeout -s KILL $((seconds + 120)) "$bin" "$corpus" "Fuzz/seeds/$t" \
    -max_total_time="$seconds" -timeout=20 -detect_leaks=0 -rss_limit_mb=4096 -malloc_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  size=$(ls "$corpus" | wc -l)
  found=$(ls "$crashes" | wc -l)
  summary+=("$(printf '%-12s %10s execs %6s corpus files %3s crashes (exit %s)' "$t" "$execs" "$size" "$found" "$rc")")
done
printf '%s\n' "${summary[@]}"
