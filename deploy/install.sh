#!/bin/sh
# The one way Switchyard is installed, by the Makefile (tests, local runs) and the Dockerfile:
#   deploy/install.sh VENV [PIP_TARGET...]     e.g. deploy/install.sh .venv -e '.[test]'
set -eu
venv=$1
shift
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --no-cache-dir --upgrade pip
"$venv/bin/pip" install --quiet --no-cache-dir "$@"
