#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster: initdb in a temporary directory, started on
# a free port on 127.0.0.1 (as the unprivileged `postgres` user when run as root), and
# LINKGATE_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT exported, so the tests in tests/ run
# on PostgreSQL (each test environment creates its own database there; see `on_test_store` in
# tests/common/mod.rs). The cluster is stopped and removed when the command ends, whatever happens.
# PostgreSQL's server binaries come from Debian's `postgresql` (tools/test-setup.sh installs it).
#   tools/with-postgres.sh cargo test --test flow
set -euo pipefail

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$bin/initdb" ] || { echo "with-postgres: no PostgreSQL server (apt-get install postgresql)" >&2; exit 1; }

dir="$(mktemp -d /tmp/linkgate-pg.XXXXXX)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
stop() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
started=
for _ in 1 2 3 4 5; do
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null; then
    started=1
    break
  fi
done
[ -n "$started" ] || { echo "with-postgres: PostgreSQL did not start:" >&2; cat "$dir/log" >&2; exit 1; }

export LINKGATE_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port"
echo "with-postgres: PostgreSQL on 127.0.0.1:$port" >&2
"$@"
