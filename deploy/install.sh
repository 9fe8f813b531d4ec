#!/bin/sh
# The one way Switchyard is installed, by the Makefile (tests, local runs) and the Dockerfile:
#   deploy/install.sh VENV [PIP_TARGET...]     e.g. deploy/install.sh .venv -e '.[test]'
# With SWITCHYARD_LOCK=FILE (the image: deploy/requirements.lock), every dependency is installed
# from the lock file first, each checked against its recorded hashes, then the package itself
# without resolving anything more: a reproducible image. $PYTHON (default python3) makes the venv:
# an optimised CPython build (the image's, a distribution's python3) runs the gateway on about a
# fifth less CPU per small request than a plain source build (benchmarks/RESULTS.md).
set -eu
venv=$1
shift
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --no-cache-dir --upgrade pip
if [ -n "${SWITCHYARD_LOCK:-}" ]; then
  "$venv/bin/pip" install --quiet --no-cache-dir --require-hashes -r "$SWITCHYARD_LOCK"
  "$venv/bin/pip" install --quiet --no-cache-dir --no-deps "$@"
else
  "$venv/bin/pip" install --quiet --no-cache-dir "$@"
fi
