#!/usr/bin/env bash
# Installs what `cargo test` drives besides Rust, where it is missing, so the README's test command
# (tools/test.sh) passes on a fresh Debian machine with only Rust, Node.js and Python on it.
# Idempotent: a tool already there is left alone. Needs root (or sudo) only when it installs.
# Every failure stops here with the reason; the tests themselves fail (never skip) without a tool.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  echo "test-setup: installing $* from Debian" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# openssl: TLS protocol checks in tests/ops.rs.
command -v openssl >/dev/null 2>&1 || apt_install openssl

# nginx for tests/proxies.rs (a real reverse proxy in front of linkgate). The tests start their
# own nginx on loopback; the package's service may fail to start here, which is not an error.
if ! [ -x /usr/sbin/nginx ]; then
  apt_install nginx || echo "test-setup: apt reported an error installing nginx (its service may not start here); checking the binary" >&2
  [ -x /usr/sbin/nginx ] || { echo "test-setup: /usr/sbin/nginx is missing after installing Debian's nginx" >&2; exit 1; }
fi

# ACME server for tests/acme.rs: Debian's pebble ships pebble and pebble-challtestsrv.
{ command -v pebble && command -v pebble-challtestsrv; } >/dev/null 2>&1 || apt_install pebble

# Headless browser for tests/browser.rs and tests/locale.rs: Debian's Chromium.
[ -x "${LINKGATE_CHROMIUM:-/usr/bin/chromium}" ] || apt_install chromium chromium-driver

# PostgreSQL for tests/postgres.rs: Debian's server binaries (initdb, pg_ctl, postgres in
# /usr/lib/postgresql/<version>/bin) and psql. The tests start their own throwaway cluster as the
# `postgres` user the package creates; the cluster Debian may create and start is not used, so a
# failure to start it (no init system in a container) is not an error here.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
pg_ready() {
  local bin; bin="$(pg_bin)"
  [ -n "$bin" ] && [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ] \
    && [ -x "$bin/psql" ] && id -u postgres >/dev/null 2>&1
}
if ! pg_ready; then
  apt_install postgresql postgresql-client \
    || echo "test-setup: apt reported an error installing postgresql (the system cluster may not start here); checking the binaries" >&2
  pg_ready || { echo "test-setup: PostgreSQL's initdb, pg_ctl, postgres, psql or the postgres user are missing after installing Debian's postgresql" >&2; exit 1; }
fi

# playwright-core and axe-core from the npm registry, pinned by tests/browser/package-lock.json.
command -v node >/dev/null 2>&1 || { echo "test-setup: node is missing: the browser tests need Node.js 20+" >&2; exit 1; }
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# Python with a working venv (Debian splits ensurepip into python3-venv) for tests/python_client.rs,
# which installs Authlib from PyPI into a venv under target/.
probe="$(mktemp -d)"
if ! python3 -m venv "$probe/v" >/dev/null 2>&1; then
  apt_install python3 python3-venv
  rm -rf "$probe/v"
  python3 -m venv "$probe/v" >/dev/null
fi
rm -rf "$probe"

echo "test-setup: everything the tests need is installed" >&2
