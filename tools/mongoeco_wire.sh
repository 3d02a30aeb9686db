#!/usr/bin/env bash
# Run a command against mongoeco's MongoDB-wire server (a second, independent wire implementation).
#
#   tools/mongoeco_wire.sh .venv/bin/pytest -k wire     # MONGODB_URI is exported to the command
#   tools/mongoeco_wire.sh                              # no command: print the URI, serve until Ctrl-C
#
# 1. Creates .venv-mongoeco once (Python >= 3.13: `python3.13` on PATH, else pyenv's
#    /root/.pyenv/versions/3.13*/bin/python3.13) and installs tools/requirements-mongoeco.txt;
#    reinstalls only when that file changes.
# 2. Starts tools/mongoeco_server.py as a separate process on a free loopback port, waits until
#    it answers a ping, exports MONGODB_URI.
# 3. Runs the command, then always stops the server (trap), and exits with the command's status.
#
# Environment: MONGOECO_VENV (default .venv-mongoeco), MONGOECO_ENGINE (memory|sqlite, default
# memory), MONGOECO_STARTUP_TIMEOUT (seconds, default 60), MONGOECO_LOG (keep the server's
# output in that file; by default a temporary file, shown when the command fails, then removed).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${MONGOECO_VENV:-.venv-mongoeco}"
REQUIREMENTS=tools/requirements-mongoeco.txt
STAMP="$VENV/.installed-stamp"
ENGINE="${MONGOECO_ENGINE:-memory}"
STARTUP_TIMEOUT="${MONGOECO_STARTUP_TIMEOUT:-60}"

die() { echo "mongoeco_wire: $*" >&2; exit 1; }

# A Python >= 3.13 that really runs (a pyenv shim named python3.13 may exist and still fail).
find_python313() {
  local candidate
  for candidate in "$(command -v python3.13 || true)" /root/.pyenv/versions/3.13*/bin/python3.13; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# --- 1. the environment (idempotent) ---------------------------------------------------------
if [ ! -f "$STAMP" ] || [ "$REQUIREMENTS" -nt "$STAMP" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    PY313="$(find_python313)" || die "no Python >= 3.13 found (python3.13 on PATH or /root/.pyenv/versions/3.13*/bin/python3.13); mongoeco needs it"
    echo "mongoeco_wire: creating $VENV with $PY313" >&2
    "$PY313" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  touch "$STAMP"
fi

# Our main venv and this one should speak with the same driver version (warn only).
if [ -x .venv/bin/python ]; then
  ours="$(.venv/bin/python -c 'import pymongo; print(pymongo.version)' 2>/dev/null || true)"
  theirs="$("$VENV/bin/python" -c 'import pymongo; print(pymongo.version)')"
  if [ -n "$ours" ] && [ "$ours" != "$theirs" ]; then
    echo "mongoeco_wire: warning: .venv has pymongo $ours, $REQUIREMENTS pins $theirs" >&2
  fi
fi

# --- 2. the server -----------------------------------------------------------------------------
if [ -n "${MONGOECO_LOG:-}" ]; then LOG="$MONGOECO_LOG"; : >"$LOG"; KEEP_LOG=1
else LOG="$(mktemp -t mongoeco-wire.XXXXXX.log)"; KEEP_LOG=""; fi
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
  [ -n "$KEEP_LOG" ] || rm -f "$LOG"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$VENV/bin/python" -u tools/mongoeco_server.py --host 127.0.0.1 --port 0 --engine "$ENGINE" >"$LOG" 2>&1 &
SERVER_PID=$!

PORT=""
deadline=$((SECONDS + STARTUP_TIMEOUT))
while [ -z "$PORT" ]; do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; die "the server exited during startup"; }
  [ "$SECONDS" -lt "$deadline" ] || { cat "$LOG" >&2; die "no 'listening on' line within ${STARTUP_TIMEOUT}s"; }
  PORT="$(sed -n 's/^listening on [^ ]*:\([0-9][0-9]*\)$/\1/p' "$LOG" | head -n 1)"
  [ -n "$PORT" ] || sleep 0.1
done

MONGODB_URI="mongodb://127.0.0.1:${PORT}/?directConnection=true"
"$VENV/bin/python" - "$MONGODB_URI" <<'EOF' || { cat "$LOG" >&2; die "the server listens but does not answer a ping"; }
import sys
from pymongo import MongoClient

with MongoClient(sys.argv[1], serverSelectionTimeoutMS=10_000) as client:
    assert client.admin.command("ping")["ok"] == 1
EOF
export MONGODB_URI
echo "mongoeco_wire: mongoeco $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mongoeco"))') ($ENGINE engine) at $MONGODB_URI (pid $SERVER_PID)" >&2

# --- 3. the command ----------------------------------------------------------------------------
if [ "$#" -eq 0 ]; then
  echo "MONGODB_URI=$MONGODB_URI"
  echo "mongoeco_wire: serving until Ctrl-C" >&2
  wait "$SERVER_PID"
  exit 0
fi
status=0
"$@" || status=$?
if [ "$status" -ne 0 ] && [ -s "$LOG" ]; then
  echo "mongoeco_wire: the command failed ($status); the server's output (last 50 lines):" >&2
  tail -n 50 "$LOG" >&2
fi
exit "$status"
