#!/usr/bin/env bash
# Checks the unit file: `systemd-analyze verify` and the `security` exposure score (target ≤ 2.0).
# Needs a built binary (BIN, default target/debug/linkgate); installs systemd if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-target/debug/linkgate}
if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
# verify wants the ExecStart binary where the unit says it is.
placed=""
if [ ! -e /usr/local/bin/linkgate ]; then
  cp "$bin" /usr/local/bin/linkgate
  placed=yes
fi
trap '[ -n "$placed" ] && rm -f /usr/local/bin/linkgate' EXIT
systemd-analyze verify systemd/linkgate.service
score=$(systemd-analyze security --offline=yes systemd/linkgate.service 2>/dev/null | sed -n 's/.*Overall exposure level for linkgate.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security exposure: ${score:-unknown}"
awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }' || { echo "exposure ${score} is above 2.0"; exit 1; }
