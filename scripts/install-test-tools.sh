#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, pinned, into .tools/:
#   - the official SARIF validator, @microsoft/sarif-multitool (npm)
#   - the pre-commit framework (PyPI), in a virtualenv at .tools/venv
#   - Dask and distributed (PyPI) for deploy/dask/driver.py, in .tools/dask-venv
# Reruns are cheap: an installed, matching version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
SARIF_MULTITOOL_VERSION=5.7.0
mkdir -p .tools
have=$(cat .tools/sarif-multitool.version 2>/dev/null || true)
if [ "$have" != "$SARIF_MULTITOOL_VERSION" ] || [ ! -x .tools/node_modules/.bin/sarif-multitool ]; then
  npm install --silent --no-audit --no-fund --prefix .tools "@microsoft/sarif-multitool@$SARIF_MULTITOOL_VERSION" >/dev/null
  # npm 11 does not run the package's postinstall, which only sets this bit.
  chmod u+x .tools/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool
  echo "$SARIF_MULTITOOL_VERSION" > .tools/sarif-multitool.version
fi

PRE_COMMIT_VERSION=4.7.0
if [ "$(.tools/venv/bin/pre-commit --version 2>/dev/null)" != "pre-commit $PRE_COMMIT_VERSION" ]; then
  python3 -m venv .tools/venv
  .tools/venv/bin/pip install -q --disable-pip-version-check "pre-commit==$PRE_COMMIT_VERSION"
fi

# The Dask driver's pinned dependencies (deploy/dask/requirements.txt), in .tools/dask-venv.
DASK_REQUIREMENTS=deploy/dask/requirements.txt
dask_want=$(sha256sum "$DASK_REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat .tools/dask-venv/requirements.sha256 2>/dev/null)" != "$dask_want" ]; then
  python3 -m venv .tools/dask-venv
  .tools/dask-venv/bin/pip install -q --disable-pip-version-check -r "$DASK_REQUIREMENTS"
  echo "$dask_want" > .tools/dask-venv/requirements.sha256
fi
