#!/usr/bin/env bash
# Big Bilbao bootstrap: sets up what is missing (.venv, Python packages, JVM jars), then runs.
#   ./bb demo            run the embedded-default demo (broker + producer + streaming job + summary)
#   ./bb test [ARGS]     run the test suite (pytest ARGS); ./bb test -m unit is the fast pure tier (no JVM)
#   ./bb lint            ruff on the whole tree, mypy on the pure packages (settings in pyproject.toml)
#   ./bb COMMAND [ARGS]  any other `bigbilbao` command, e.g. ./bb broker status
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

say() { printf 'bb: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

find_python() {
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

setup_venv() {
  local extras=$1 stamp=.venv/.bigbilbao-installed want
  if [ ! -x .venv/bin/python ]; then
    local py; py=$(find_python) || die "Python 3.10 or newer is needed; install it (e.g. apt-get install python3 python3-venv)."
    say "creating .venv with $($py --version 2>&1)"
    "$py" -m venv .venv || die "could not create .venv; install the venv module (e.g. apt-get install python3-venv)."
  fi
  want="$extras $(cat pyproject.toml | cksum)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Python packages into .venv (first run takes a minute)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" ||
      die "pip could not install the project; check the network or your pip index settings (pip.conf)."
    echo "$want" > "$stamp"
  fi
  .venv/bin/bigbilbao setup >/dev/null || exit $?
}

command=${1:-demo}
case "$command" in
  test)
    shift
    setup_venv "[dev]"
    export PYSPARK_PYTHON="$ROOT/.venv/bin/python" PYSPARK_DRIVER_PYTHON="$ROOT/.venv/bin/python"
    exec .venv/bin/python -m pytest "$@"
    ;;
  lint)
    shift
    setup_venv "[dev]"
    say "ruff check"
    .venv/bin/ruff check .
    say "mypy (pure packages)"
    exec .venv/bin/mypy
    ;;
  -h|--help|help)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    [ $# -gt 0 ] && shift
    setup_venv "[dev]"
    export PYSPARK_PYTHON="$ROOT/.venv/bin/python"
    exec .venv/bin/bigbilbao "$command" "$@"
    ;;
esac
