#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, pinned, into .tools/:
#   - the official SARIF validator, @microsoft/sarif-multitool (npm)
#   - the pre-commit framework (PyPI), in a virtualenv at .tools/venv
#   - Dask and distributed (PyPI) for deploy/dask/driver.py, in .tools/dask-venv
#   - maturin (PyPI), which builds the trawl-scanner wheel (scripts/build-wheel), in
#     .tools/maturin-venv, and the wheel of setuptools (the build backend of the root
#     pyproject.toml, the pre-commit hook's shim) in .tools/wheels, for offline installs
# Reruns are cheap: an installed, matching version is kept.
# `scripts/install-test-tools.sh maturin` installs maturin alone (what scripts/build-wheel needs).
set -euo pipefail
cd "$(dirname "$0")/.."

MATURIN_VERSION=1.16.0
if [ "$(.tools/maturin-venv/bin/maturin --version 2>/dev/null)" != "maturin $MATURIN_VERSION" ]; then
  python3 -m venv .tools/maturin-venv
  .tools/maturin-venv/bin/pip install -q --disable-pip-version-check "maturin==$MATURIN_VERSION"
fi
if [ "${1:-}" = maturin ]; then
  exit 0
fi

# Keep in step with `requires` in the root pyproject.toml.
SETUPTOOLS_VERSION=84.2.1
if ! ls .tools/wheels/setuptools-"$SETUPTOOLS_VERSION"-*.whl >/dev/null 2>&1; then
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
    -d .tools/wheels "setuptools==$SETUPTOOLS_VERSION"
fi
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
