#!/usr/bin/env bash
# wrk benchmark of linkgate against hyper's hello-world, in one run (issue 13's method): each
# server pinned to one core, wrk to the other, 32 connections. Prints req/s, p99 and the ratios
# to the baseline for /userinfo, /introspect, refresh without rotation and refresh with
# rotation (each wrk connection following its own chain), the data directory's growth per 100k
# refreshes, and the server's RSS idle and after the load.
#
#   tools/bench-wrk.sh [SECONDS]         # default 10 s per endpoint; about a minute in all
#   CONNS=32 SERVER_CPU=0 WRK_CPU=1 tools/bench-wrk.sh 30
#
# The client-authenticated scenarios give each wrk thread its own X-Forwarded-For address (the
# bench config trusts 127.0.0.1), as real traffic comes from many addresses. (The first version of
# the client-authentication throttle held its reservation for the whole request, so more than 20
# requests in flight from one address got 429; it now holds only the secret check.) Installs wrk from Debian when missing (as root, or through sudo). Loopback only. Builds the
# release binary and the benchmark harness (benches/load.rs, which also serves the baseline
# and prepares the data directory and tokens). On a machine shared with other work the figures
# are noisy (the load average is printed with them): compare ratios from one run only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${1:-10}
CONNS=${CONNS:-32}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
WRK_THREADS=${WRK_THREADS:-4}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else
    sudo apt-get install -y wrk >/dev/null || { sudo apt-get update >/dev/null && sudo apt-get install -y wrk >/dev/null; }
  fi
fi

# One build: the bench harness, and with it the release binary it starts (the same binary
# `cargo bench --bench load` measures; a separate `cargo build --release` would rebuild it).
echo "building (release)..." >&2
BENCH=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null |
  grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)
BIN=target/release/linkgate
[ -x "$BENCH" ] || { echo "cannot find the benchmark harness" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# wrk's 99th percentile in milliseconds.
p99_ms() {
  awk '$1 == "99%" {
    v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v);
    if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000;
    printf "%.3f", v }' "$1"
}
rate() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }
total() { awk '/requests in/ { print $1 }' "$1"; }
non200() { awk '/^non-200 answers:/ { n = $3 } END { print (n == "" ? "-" : n) }' "$1"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

run_wrk() { # NAME URL [wrk args...]
  local name=$1 url=$2
  shift 2
  taskset -c "$WRK_CPU" wrk -c "$CONNS" -d "${DURATION}s" --latency "$@" "$url" >"$WORK/$name.out" 2>&1
}

# Waits (bounded) for a line FILE's process prints; echoes what follows PREFIX.
wait_line() { # FILE PREFIX
  for _ in $(seq 1 200); do
    if line=$(grep -m1 "^$2" "$1" 2>/dev/null); then
      echo "${line#"$2"}"
      return 0
    fi
    sleep 0.05
  done
  echo "timed out waiting for '$2' in $1" >&2
  return 1
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Baseline: hyper's hello-world (the bench harness's --baseline-server), alone on its core. Run
# before and after linkgate; the ratios use the faster of the two, so that a busy moment of the
# machine during one baseline run does not flatter linkgate.
baseline() { # NAME
  taskset -c "$SERVER_CPU" "$BENCH" --baseline-server >"$WORK/$1.addr" &
  local pid=$!
  PIDS+=("$pid")
  run_wrk "$1" "http://$(wait_line "$WORK/$1.addr" "")/" -t "$WRK_THREADS"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
baseline baseline

# linkgate, with a user, tokens for each scenario and a rotating client (one grant per connection).
"$BENCH" --wrk-prepare "$WORK/lg" "$CONNS" >/dev/null
RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN" --config "$WORK/lg/linkgate.toml" >"$WORK/lg.stdout" 2>"$WORK/lg.stderr" &
LG_PID=$!
PIDS+=("$LG_PID")
LG_ADDR=$(wait_line "$WORK/lg.stdout" "listening on ")
sleep 1
IDLE_RSS=$(rss_kib "$LG_PID")
DATA="$WORK/lg/data"
export ACCESS_TOKEN REFRESH_TOKEN CLIENT_BASIC ROTATING_BASIC ROTATING_FILE
ACCESS_TOKEN=$(cat "$WORK/lg/access.txt")
REFRESH_TOKEN=$(cat "$WORK/lg/refresh.txt")
CLIENT_BASIC=$(printf '%s' 'alexa-skill:alexa-secret-0123456789' | base64 -w0)
ROTATING_BASIC=$(printf '%s' 'rotating:rotating-secret-0123456789' | base64 -w0)
ROTATING_FILE="$WORK/lg/rotating.txt"

run_wrk userinfo "http://$LG_ADDR/userinfo" -t "$WRK_THREADS" -s tools/wrk/userinfo.lua
run_wrk introspect "http://$LG_ADDR/introspect" -t "$WRK_THREADS" -s tools/wrk/introspect.lua
before=$(du -sb "$DATA" | cut -f1)
run_wrk refresh "http://$LG_ADDR/token" -t "$WRK_THREADS" -s tools/wrk/refresh.lua
after=$(du -sb "$DATA" | cut -f1)
REFRESH_GROWTH=$(( (after - before) * 100000 / ($(total "$WORK/refresh.out") + 1) ))
before=$after
run_wrk rotate "http://$LG_ADDR/token" -t "$CONNS" -s tools/wrk/rotate.lua
after=$(du -sb "$DATA" | cut -f1)
ROTATE_GROWTH=$(( (after - before) * 100000 / ($(total "$WORK/rotate.out") + 1) ))
LOADED_RSS=$(rss_kib "$LG_PID")
kill "$LG_PID"
wait "$LG_PID" 2>/dev/null || true
baseline baseline2

reference=baseline
if [ "$(rate "$WORK/baseline2.out")" -gt "$(rate "$WORK/baseline.out")" ]; then reference=baseline2; fi
base_rate=$(rate "$WORK/$reference.out")
base_p99=$(p99_ms "$WORK/$reference.out")
echo
echo "wrk, $CONNS connections, ${DURATION} s each; servers on CPU $SERVER_CPU, wrk on CPU $WRK_CPU; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg); ratios to the faster baseline run"
printf '%-44s %10s %9s %7s %9s %8s\n' "request" "req/s" "p99 ms" "ratio" "p99 ratio" "non-200"
for name in baseline userinfo introspect refresh rotate baseline2; do
  case $name in
    baseline) label="baseline: hyper hello-world (before)" ;;
    baseline2) label="baseline: hyper hello-world (after)" ;;
    userinfo) label="GET /userinfo" ;;
    introspect) label="POST /introspect" ;;
    refresh) label="POST /token refresh, no rotation" ;;
    rotate) label="POST /token refresh, rotation (-t $CONNS)" ;;
  esac
  r=$(rate "$WORK/$name.out"); p=$(p99_ms "$WORK/$name.out")
  printf '%-44s %10s %9s %7s %9s %8s\n' "$label" "$r" "$p" \
    "$(awk -v a="$r" -v b="$base_rate" 'BEGIN { printf "%.2f", a / b }')" \
    "$(awk -v a="$p" -v b="$base_p99" 'BEGIN { printf "%.2f", a / b }')" \
    "$(non200 "$WORK/$name.out")"
done
echo
echo "data directory growth per 100k refreshes: no rotation ${REFRESH_GROWTH} bytes, rotation ${ROTATE_GROWTH} bytes"
echo "linkgate RSS: idle $((IDLE_RSS / 1024)).$(( (IDLE_RSS % 1024) * 10 / 1024 )) MiB, after the load $((LOADED_RSS / 1024)).$(( (LOADED_RSS % 1024) * 10 / 1024 )) MiB"
