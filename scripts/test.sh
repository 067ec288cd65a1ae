#!/usr/bin/env bash
# Runs Auscult's tests: installs what they need (scripts/setup.sh --browser --interop: the report and
# Studio tests open pages in headless Chromium; schemathesis checks the Studio's API; the round-trip
# tests run transformers and CTranslate2 on Auscult's files), then the Swift Testing suites,
# optimised (numeric tests are very slow in debug builds; @testable needs -enable-testing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser --interop
swift build --build-tests -c release -Xswiftc -enable-testing
if [ $# -gt 0 ]; then
  swift test -c release -Xswiftc -enable-testing --skip-build "$@"
else
  # The Studio tests serve the Studio inside the test process, and its handlers answer on Swift's
  # cooperative pool (2 threads on a 2-core machine). Among the other suites' minute-long tests
  # a request can wait past curl's 120 s limit, so they run in a pass of their own, after the rest.
  swift test -c release -Xswiftc -enable-testing --skip-build --skip AuscultStudioTests
  swift test -c release -Xswiftc -enable-testing --skip-build --filter AuscultStudioTests
fi
# The Studio's API against its OpenAPI document, property-based (schemathesis).
scripts/studio-api-check.sh
# Round trips with the Python tools (pytest, Tests/Interop): converted models in transformers and CTranslate2.
(cd Tests/Interop && ../../.venv-interop/bin/python -m pytest -q -p no:cacheprovider .)
# Auscult as a dependency at a version tag: builds Examples/HelloAuscult and runs the README's hello world.
scripts/consumer.sh
