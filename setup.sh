#!/usr/bin/env bash
# One-command setup: Python requirements, the package itself, and the default assets.
#   bash setup.sh                      (ICT-FaceKit from $GANFIT_ICT_DIR, else ../shared/assets/ict-facekit)
#   GANFIT_ICT_DIR=~/ICT-FaceKit bash setup.sh
# When 3DDFA_V2's configs/ are available ($GANFIT_BFM_CONFIGS, else ../shared/assets/bfm-3ddfa), the BFM and
# the 3DDFA_V2 regressor (the evaluation peer) are fetched too.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps -e .
if [ -z "${GANFIT_ICT_DIR:-}" ] && [ -d ../shared/assets/ict-facekit ]; then
  export GANFIT_ICT_DIR="$(cd ../shared/assets/ict-facekit && pwd)"
fi
"$PY" tools/fetch_assets.py
if [ -z "${GANFIT_BFM_CONFIGS:-}" ] && [ -d ../shared/assets/bfm-3ddfa ]; then
  export GANFIT_BFM_CONFIGS="$(cd ../shared/assets/bfm-3ddfa && pwd)"
fi
if [ -n "${GANFIT_BFM_CONFIGS:-}" ]; then
  "$PY" tools/fetch_assets.py --assets=bfm,ddfa_v2
fi
# The report page's 3D viewer (three.js from the npm registry, checksum-verified) and the node tools the tests
# use (tests/js: the Khronos glTF validator, playwright-core), where npm is present; Debian's Chromium for the
# report page's browser test when this runs as root with apt-get (GANFIT_NO_BROWSER=1 skips it).
if command -v npm >/dev/null 2>&1; then
  "$PY" tools/fetch_assets.py --assets=three || echo "warning: the 3D viewer (three.js) was not fetched; report pages will show pictures only"
  (cd tests/js && npm ci --no-audit --no-fund --silent) || echo "warning: npm ci in tests/js failed; the glTF-validator and browser tests will skip"
else
  echo "note: npm not found: report pages show the pictures without the 3D view (install Node.js and npm, then run: python tools/fetch_assets.py --assets=three)"
fi
if [ -z "${GANFIT_NO_BROWSER:-}" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the report page's browser test (GANFIT_NO_BROWSER=1 skips) ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
    >/dev/null 2>&1 || echo "warning: chromium was not installed; the browser test will skip"
fi
echo "setup done: assets in ${GANFIT_ASSETS:-$HOME/.cache/ganfit_jax}"
