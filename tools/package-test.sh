#!/usr/bin/env bash
# The Debian package, tested for real on this machine (run as root; CI is): build it, install it
# with apt, check owners and modes, `--check-config` as installed, run the installed binary as
# the `linkgate` user (runuser: CI has no systemd) on the packaged config with a test client,
# walk a link through it, upgrade by installing the package again (config edits and data kept),
# remove (data and config kept), purge (gone, user too); `systemd-analyze verify` on the unit.
# Every wait is bounded. Leaves the machine as it found it (the package purged).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "package-test: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (apt-get install, a system user)"
export DEBIAN_FRONTEND=noninteractive
# What the test itself uses (a fresh Debian has them, but a slim image may not).
need=""
command -v adduser >/dev/null 2>&1 || need="$need adduser"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
if [ -n "$need" ]; then
  apt-get update -qq && apt-get install -y -qq $need >/dev/null
fi

deb=$(bash tools/package.sh --dev | tail -1)
[ -f "$deb" ] || fail "no package built"
say "built $deb ($(du -h "$deb" | cut -f1))"
# Read whole, then matched: `cmd | grep -q` under pipefail fails when grep exits first and the
# writer gets SIGPIPE (it did, in CI, on dpkg-deb's longer output).
info=$(dpkg-deb --info "$deb" 2>&1) || fail "dpkg-deb --info: $info"
grep -q '^ *Package: linkgate$' <<<"$info" || fail "not a linkgate package"

cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  dpkg -P linkgate >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -P linkgate >/dev/null 2>&1 || true

apt-get install -y -q "./$deb" >/tmp/package-test-apt.log 2>&1 || { cat /tmp/package-test-apt.log >&2; fail "apt-get install"; }
say "installed"

mode_of() { stat -c '%a %U:%G' "$1"; }
[ "$(mode_of /usr/bin/linkgate)" = "755 root:root" ] || fail "/usr/bin/linkgate: $(mode_of /usr/bin/linkgate)"
[ "$(mode_of /etc/linkgate/linkgate.toml)" = "640 root:linkgate" ] || fail "config: $(mode_of /etc/linkgate/linkgate.toml)"
[ "$(mode_of /var/lib/linkgate)" = "700 linkgate:linkgate" ] || fail "data: $(mode_of /var/lib/linkgate)"
grep -q nologin <<<"$(getent passwd linkgate)" || fail "the linkgate user should have no login shell"
grep -qx '/etc/linkgate/linkgate.toml' /var/lib/dpkg/info/linkgate.conffiles || fail "the config is not a conffile"
unit=$(dpkg -L linkgate | grep 'linkgate.service$' | head -1)
[ -n "$unit" ] || fail "no systemd unit in the package"
grep -q '^ExecStart=/usr/bin/linkgate' "$unit" || fail "the unit does not run /usr/bin/linkgate"
systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
# Installed, not started nor enabled (the config is the example's until the operator edits it).
[ ! -e /etc/systemd/system/multi-user.target.wants/linkgate.service ] || fail "the unit was enabled"
say "owners, modes, conffile and unit ok"

run() { runuser -u linkgate -- /usr/bin/linkgate --config /etc/linkgate/linkgate.toml "$@"; }
run --check-config >/tmp/package-test-check.log 2>&1 || { cat /tmp/package-test-check.log >&2; fail "--check-config as installed"; }

# A test client: the example config on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s#^listen = .*#listen = \"127.0.0.1:$port\"#; s#^public_url = .*#public_url = \"http://127.0.0.1:$port\"#" /etc/linkgate/linkgate.toml
printf 'a packaged password\n' | run --add-user alice >/dev/null

start() {
  : > /tmp/package-test-server.log
  runuser -u linkgate -- /usr/bin/linkgate --config /etc/linkgate/linkgate.toml \
    >/tmp/package-test-server.log 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    grep -q "^listening on" /tmp/package-test-server.log && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat /tmp/package-test-server.log >&2
  fail "the installed server did not start"
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }

start
tokens=$(python3 tools/package_link.py "http://127.0.0.1:$port" link) || fail "walking a link"
refresh_token=$(echo "$tokens" | cut -d' ' -f2)
say "linked through the installed server"
[ -z "$(find /var/lib/linkgate ! -user linkgate)" ] || fail "files in the data directory not owned by linkgate"
stop

# Upgrade: the same package again; the operator's edit and the data stay.
echo '# edited by the operator' >> /etc/linkgate/linkgate.toml
apt-get install -y -q --reinstall -o Dpkg::Options::=--force-confold "./$deb" >/tmp/package-test-apt.log 2>&1 || { cat /tmp/package-test-apt.log >&2; fail "reinstall"; }
grep -q '^# edited by the operator' /etc/linkgate/linkgate.toml || fail "the upgrade lost the config edit"
start
python3 tools/package_link.py "http://127.0.0.1:$port" refresh "$refresh_token" >/dev/null || fail "the link did not survive the upgrade"
stop
say "upgrade kept the config edit and the link"

# Remove: the binary goes, the data and the config stay. Purge: everything goes.
apt-get remove -y -q linkgate >/tmp/package-test-apt.log 2>&1 || { cat /tmp/package-test-apt.log >&2; fail "remove"; }
[ ! -e /usr/bin/linkgate ] || fail "removed, the binary is still there"
[ -d /var/lib/linkgate ] && [ -f /etc/linkgate/linkgate.toml ] || fail "remove lost the data or the config"
apt-get purge -y -q linkgate >/tmp/package-test-apt.log 2>&1 || { cat /tmp/package-test-apt.log >&2; fail "purge"; }
[ ! -e /var/lib/linkgate ] && [ ! -e /etc/linkgate ] || fail "purge left data or config"
! getent passwd linkgate >/dev/null || fail "purge left the linkgate user"
say "remove kept data and config; purge removed them and the user"
say "ok"
