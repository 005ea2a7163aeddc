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
echo "setup done: assets in ${GANFIT_ASSETS:-$HOME/.cache/ganfit_jax}"
