# A throwaway PostgreSQL cluster for the scripts that build dumps (build-sample, bench).
# Source it, then:  scratch_pg_start BIN_DIR; trap scratch_pg_stop EXIT
# It exports PGHOST, PGPORT and PGUSER (trust auth on 127.0.0.1) and, as root, runs the server
# as the `postgres` user, since PostgreSQL refuses to run as root.

scratch_pg_start() {
  SCRATCH_BIN="$1"
  SCRATCH_DIR=$(mktemp -d -p "${SCRATCH_PARENT:-${TMPDIR:-/tmp}}")
  chmod 711 "$SCRATCH_DIR"
  SCRATCH_AS=()
  if [ "$(id -u)" = 0 ]; then
    SCRATCH_AS=(setpriv --reuid=postgres --regid=postgres --clear-groups)
    chown postgres: "$SCRATCH_DIR"
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${SCRATCH_AS[@]}" "$SCRATCH_BIN/initdb" -D "$SCRATCH_DIR/data" -U postgres --auth=trust \
    -E UTF8 --locale=C --no-sync >/dev/null
  "${SCRATCH_AS[@]}" "$SCRATCH_BIN/pg_ctl" -D "$SCRATCH_DIR/data" -l "$SCRATCH_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $SCRATCH_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 -c autovacuum=off -c maintenance_work_mem=512MB" \
    start >/dev/null
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
}

scratch_pg_stop() {
  if [ -n "${SCRATCH_DIR:-}" ]; then
    "${SCRATCH_AS[@]}" "$SCRATCH_BIN/pg_ctl" -D "$SCRATCH_DIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$SCRATCH_DIR"
  fi
}
