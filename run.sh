#!/usr/bin/env bash
# One command to set up and run the help desk, one more to test it.
#   ./run.sh [streamlit options]   create .venv if needed, install, create/upgrade the database, serve on http://localhost:8501
#   ./run.sh test [pytest args]   install the test tools too and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv

need_install() {  # reinstall when a requirements file changed since the last install
  local stamp="$VENV/.installed-$1"
  [ ! -x "$VENV/bin/python" ] && return 0
  [ ! -f "$stamp" ] && return 0
  for f in requirements.txt requirements-dev.txt; do [ "$f" -nt "$stamp" ] && return 0; done
  return 1
}

install() {
  local which=$1 file=requirements.txt
  [ "$which" = dev ] && file=requirements-dev.txt
  if need_install "$which"; then
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$file"
    touch "$VENV/.installed-$which"
  fi
}

case "${1:-run}" in
  run|-*)  # "./run.sh --server.port 8600" passes the options to Streamlit
    install app
    "$VENV/bin/python" -m lib.cli init-db
    [ "${1:-}" = run ] && shift
    exec "$VENV/bin/python" -m streamlit run server.py "$@"
    ;;
  test)
    install dev
    shift
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh [run [streamlit options] | test [pytest options]]" >&2
    exit 2
    ;;
esac
