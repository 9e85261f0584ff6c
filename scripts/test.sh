#!/usr/bin/env bash
# Runs one test suite. Suites are chosen by file name under test/:
#   unit         *.test.ts except the suites below (plus lint, typecheck and the layer rules of
#                .dependency-cruiser.cjs): fast, what `npm test` runs
#   conformance  *.conformance.test.ts: against public data in ../shared/data (skips, saying so, when absent)
#   e2e          *.e2e.test.ts: whole commands end to end
#   browser      *.browser.test.ts: reports opened in headless Chromium
#   server       *.server.test.ts: against a real vLLM (CPU build) it installs and starts (skips, saying why)
#   tinker       *.tinker.test.ts: against a real SkyRL Tinker server (JAX, CPU) it installs and starts (skips, saying why)
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-unit}
case "$suite" in
  unit)
    npx biome check .
    npx tsc -p tsconfig.json --noEmit
    npm run --silent lint:layers
    mapfile -t files < <(find test -name '*.test.ts' ! -name '*.conformance.test.ts' ! -name '*.e2e.test.ts' ! -name '*.browser.test.ts' ! -name '*.server.test.ts' ! -name '*.tinker.test.ts' | sort) ;;
  conformance|e2e|browser|server|tinker)
    mapfile -t files < <(find test -name "*.$suite.test.ts" | sort) ;;
  *) echo "unknown suite $suite (unit, conformance, e2e, browser, server, tinker)" >&2; exit 2 ;;
esac
if ((${#files[@]} == 0)); then echo "no $suite tests"; exit 0; fi
# Each tinker file starts its own SkyRL server (heavy JAX compiles): one at a time.
concurrency=2
[[ $suite == tinker ]] && concurrency=1
exec node --import tsx --test --test-reporter=spec --test-concurrency="${KLEAR_TEST_CONCURRENCY:-$concurrency}" "${files[@]}"
