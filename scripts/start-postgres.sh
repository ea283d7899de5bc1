#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for tests / CI and print its URL on stdout (last line).
#
#   eval "$(scripts/start-postgres.sh --export)"   # sets DEEPSHELF_TEST_POSTGRES_URL, PGDATA_DIR and PG_BINDIR
#   URL=$(scripts/start-postgres.sh | tail -n1)
#   su postgres -c "$PG_BINDIR/pg_ctl -D $PGDATA_DIR stop"   # when done (as root; else without su)
#
# Uses postgres/initdb/pg_ctl on PATH or /usr/local/bin or /usr/lib/postgresql/*/bin; installs the Debian
# package if none exist. Postgres refuses to run as root, so the server runs as the `postgres` user
# (created if missing). Trust auth on 127.0.0.1 only: the data directory is disposable and never exposed.
set -euo pipefail

EXPORT=0
[[ "${1:-}" == "--export" ]] && EXPORT=1
log() { echo "start-postgres: $*" >&2; }

find_bindir() {
  local d
  for d in "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/x)")" /usr/local/bin \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$d/pg_ctl" && -x "$d/initdb" && -x "$d/postgres" ]]; then echo "$d"; return 0; fi
  done
  return 1
}

BINDIR=$(find_bindir || true)
if [[ -z "$BINDIR" ]]; then
  log "no PostgreSQL binaries found; installing the distribution package"
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  BINDIR=$(find_bindir) || { log "install failed"; exit 1; }
fi

RUN_AS=()
if [[ $(id -u) -eq 0 ]]; then
  if ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /bin/bash postgres
  fi
  RUN_AS=(su postgres -s /bin/bash -c)
fi
run() {  # run a command line as the server user
  if [[ ${#RUN_AS[@]} -gt 0 ]]; then "${RUN_AS[@]}" "$1"; else bash -c "$1"; fi
}

# A free port: ask the kernel for one (tiny race with other processes, acceptable for a test server).
PORT=${DEEPSHELF_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
DATA=$(mktemp -d /tmp/deepshelf-pg.XXXXXX)
chmod 755 "$DATA"
if [[ ${#RUN_AS[@]} -gt 0 ]]; then chown postgres "$DATA"; fi
DB=${DEEPSHELF_PG_DB:-deepshelf}

run "'$BINDIR/initdb' -D '$DATA/data' -U postgres --auth=trust -E UTF8 --no-locale >'$DATA/initdb.log' 2>&1" \
  || { cat "$DATA/initdb.log" >&2; exit 1; }
# fsync stays on: the durability tests depend on committed meaning on disk.
run "'$BINDIR/pg_ctl' -D '$DATA/data' -l '$DATA/server.log' -w -t 60 \
     -o \"-h 127.0.0.1 -p $PORT -k '$DATA' -c max_connections=200 -c shared_buffers=64MB\" start >/dev/null" \
  || { cat "$DATA/server.log" >&2; exit 1; }
# Create the database with whichever client exists: psql, or Python with psycopg (the project venv has it).
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [[ -x "$BINDIR/psql" ]]; then
  run "'$BINDIR/psql' -h 127.0.0.1 -p $PORT -U postgres -qc 'CREATE DATABASE $DB'" >&2
else
  created=0
  for py in "${PYTHON:-}" "$REPO/.venv/bin/python" python3; do
    [[ -n "$py" ]] && command -v "$py" >/dev/null 2>&1 || continue
    if "$py" - "$PORT" "$DB" <<'PY' 2>/dev/null; then created=1; break; fi
import sys
import psycopg
with psycopg.connect(f"postgresql://postgres@127.0.0.1:{sys.argv[1]}/postgres", autocommit=True) as c:
    c.execute(f"CREATE DATABASE {sys.argv[2]}")
PY
  done
  if [[ $created -eq 0 ]]; then log "no client to create '$DB'; using database 'postgres'"; DB=postgres; fi
fi

URL="postgresql://postgres@127.0.0.1:$PORT/$DB"
log "server running (data $DATA, stop with: pg_ctl -D $DATA/data stop)"
if [[ $EXPORT -eq 1 ]]; then
  echo "export DEEPSHELF_TEST_POSTGRES_URL='$URL' PGDATA_DIR='$DATA/data' PG_BINDIR='$BINDIR'"
else
  echo "$URL"
fi
