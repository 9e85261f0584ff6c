#!/usr/bin/env bash
# Installs everything klear needs on a fresh Debian machine, and does nothing that is already done:
# Debian packages, npm packages, the native addon (OpenBLAS) and the compiled TypeScript.
# Usage: bash scripts/setup.sh            (what `npm run demo` and `npm test` call first)
#        KLEAR_SETUP_EXTRA="chromium" bash scripts/setup.sh   (extra Debian packages, e.g. for browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for p in libopenblas-dev bubblewrap python3-minimal g++ make ${KLEAR_SETUP_EXTRA:-}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  echo "setup: installing Debian packages: ${need_pkgs[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

stamp=node_modules/.klear-lock-hash
want=$(sha256sum package-lock.json package.json | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want" > "$stamp"
fi

newer() { # newer TARGET SOURCES... : true when TARGET is missing or older than any source
  local t=$1; shift
  [ -e "$t" ] || return 0
  [ -n "$(find "$@" -newer "$t" -type f 2>/dev/null | head -1)" ]
}

if [ -f binding.gyp ] && newer build/Release/klear_native.node binding.gyp native; then
  echo "setup: building the native addon (OpenBLAS)" >&2
  npx node-gyp rebuild --silent >&2
fi

if newer dist/.built src tsconfig.json tsconfig.build.json; then
  echo "setup: compiling TypeScript" >&2
  rm -rf dist
  npx tsc -p tsconfig.build.json
  touch dist/.built
fi
