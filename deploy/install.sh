#!/bin/sh
# Install likeness-audit with its web service into a virtual environment, then check that it runs.
# Used by deploy/Containerfile (RUN) and by tests/test_deploy.py, which runs it on the test machine.
#   deploy/install.sh SOURCE PREFIX
# SOURCE: the checkout; PREFIX: the virtual environment (created unless it exists).
# $PIP_OPTS: extra pip options (the test passes --no-index --no-build-isolation: nothing is downloaded).
set -eu
src=${1:?usage: install.sh SOURCE PREFIX}
prefix=${2:?usage: install.sh SOURCE PREFIX}
python=${PYTHON:-python3}
if [ ! -x "$prefix/bin/python" ]; then
    "$python" -m venv "$prefix"
fi
# shellcheck disable=SC2086  # PIP_OPTS is a list of options
"$prefix/bin/python" -m pip install --no-cache-dir --disable-pip-version-check -q ${PIP_OPTS:-} "$src[serve]"
"$prefix/bin/likeness-audit" --version
"$prefix/bin/likeness-audit" serve --help >/dev/null
echo "installed likeness-audit in $prefix"
