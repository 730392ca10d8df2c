#!/usr/bin/env bash
# wrk benchmark of linkgate against hyper's hello-world, in one run (issue 13's method): each
# server pinned to one core, wrk to the other, 32 connections. Prints req/s, p99 and the ratios
# to the baseline for /userinfo, /introspect, refresh without rotation and refresh with
# rotation (each wrk connection following its own chain), the code exchange (each code once, from
# codes the harness stored beforehand, as the consent page stores them), the store's growth per 100k
# refreshes, the server's CPU time per request, and its RSS idle and after the load. Then each exchange's floor: bare hyper
# reading the same requests and answering with linkgate's own answers (the shaped baseline), and
# linkgate's rate as a ratio to it.
#
#   tools/bench-wrk.sh [SECONDS]                     # sled; default 10 s per endpoint (~1.5 min)
#   tools/bench-wrk.sh [SECONDS] --store postgres    # one node on a throwaway PostgreSQL cluster
#   tools/bench-wrk.sh [SECONDS] --store postgres --nodes 2   # two nodes behind HAProxy
#   tools/bench-wrk.sh [SECONDS] --all               # sled, PostgreSQL x1, PostgreSQL x2 in one run
#   CONNS=32 SERVER_CPU=0 WRK_CPU=1 tools/bench-wrk.sh 30
#   KEEP_WORK=1 tools/bench-wrk.sh ...               # keep wrk's outputs and the nodes' logs
#   CODES=400000 tools/bench-wrk.sh ...              # pending codes per set-up for the exchange run
#
# PostgreSQL (issue 14): the script starts its own cluster (Debian's postgresql, initdb in a
# temporary directory, a free port on 127.0.0.1, trust authentication, PostgreSQL's default
# durability: fsync on, synchronous_commit on) and removes it at the end; each set-up gets a
# database of its own. Two or more nodes share that database and each has its own storage.path
# (the admin socket); HAProxy (Debian's) balances them round robin with a health check on
# /healthz, exactly as README "Running more than one node" shows, except `option forwardfor
# if-none` (see haproxy_config). After the timed runs, the cluster is restarted with
# pg_stat_statements and one node answers a fixed number of each request, to count the SQL
# statements (round trips) per request.
#
# Each set-up gets WARMUP seconds (default 3) of /userinfo before the measured runs.
#
# Pinning: everything that serves (linkgate's nodes, PostgreSQL, HAProxy) shares SERVER_CPU, as
# the baseline has it alone; wrk has WRK_CPU. DB_CPU and LB_CPU move PostgreSQL and HAProxy.
#
# The client-authenticated scenarios give each wrk thread its own X-Forwarded-For address (the
# bench config trusts 127.0.0.1), as real traffic comes from many addresses. (The first version of
# the client-authentication throttle held its reservation for the whole request, so more than 20
# requests in flight from one address got 429; it now holds only the secret check.) Installs
# wrk (and for PostgreSQL postgresql and haproxy) from Debian when missing (as root, or through
# sudo). Loopback only. Builds the release binary and the benchmark harness (benches/load.rs,
# which also serves the baseline and prepares the store and tokens). On a machine shared with
# other work the figures are noisy (the load average is printed with them): compare ratios from
# one run only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
SETUPS=()
store=sled
nodes=1
while [ $# -gt 0 ]; do
  case $1 in
    --store) store=${2:?--store sled|postgres}; shift 2 ;;
    --nodes) nodes=${2:?--nodes N}; shift 2 ;;
    --all) SETUPS=(sled pg1 pg2); shift ;;
    [0-9]*) DURATION=$1; shift ;;
    *) echo "usage: $0 [SECONDS] [--store sled|postgres] [--nodes N] [--all]" >&2; exit 2 ;;
  esac
done
if [ ${#SETUPS[@]} -eq 0 ]; then
  case $store in
    sled)
      [ "$nodes" = 1 ] || { echo "--nodes needs --store postgres (sled is one process's)" >&2; exit 2; }
      SETUPS=(sled) ;;
    postgres)
      [[ $nodes =~ ^[1-9]$ ]] || { echo "--nodes: 1 to 9" >&2; exit 2; }
      SETUPS=("pg$nodes") ;;
    *) echo "--store: sled or postgres" >&2; exit 2 ;;
  esac
fi
CONNS=${CONNS:-32}
SERVER_CPU=${SERVER_CPU:-0}
WRK_CPU=${WRK_CPU:-1}
DB_CPU=${DB_CPU:-$SERVER_CPU}
LB_CPU=${LB_CPU:-$SERVER_CPU}
WRK_THREADS=${WRK_THREADS:-4}
WARMUP=${WARMUP:-3}
# Requests of each kind for the statement count.
COUNT_N=${COUNT_N:-200}
# Pending codes per set-up for the code-exchange run: more than it can use (exchange.lua says
# when they ran out); sled exchanges ~25k/s on one core, PostgreSQL waits on its commits.
codes_for() { # SETUP
  case $1 in
    sled) echo "${CODES:-$((DURATION * 40000))}" ;;
    *) echo "${CODES:-$((DURATION * 10000))}" ;;
  esac
}
CODES_REDIRECT='https%3A%2F%2Fpitangui.amazon.com%2Fapi%2Fskill%2Flink%2FM2TEST'

uses_postgres() { [[ " ${SETUPS[*]} " == *" pg"* ]]; }
uses_balancer() { for s in "${SETUPS[@]}"; do case $s in pg[2-9]) return 0 ;; esac; done; return 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() { # PACKAGE...
  echo "installing $* (Debian packages)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null ||
    { as_root apt-get update >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null; }
}
command -v wrk >/dev/null || apt_install wrk
PG_BIN=
if uses_postgres; then
  pg_bin() { find /usr/lib/postgresql -maxdepth 3 -name initdb -path '*/bin/*' 2>/dev/null | sort -V | tail -n1 | xargs -r dirname; }
  PG_BIN=$(pg_bin)
  if [ -z "$PG_BIN" ] || ! command -v psql >/dev/null || [ ! -e "$(dirname "$PG_BIN")/lib/pg_stat_statements.so" ]; then
    apt_install postgresql postgresql-contrib
    PG_BIN=$(pg_bin)
  fi
  [ -n "$PG_BIN" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }
fi
if uses_balancer && ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then apt_install haproxy; fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# One build: the bench harness, and with it the release binary it starts (the same binary
# `cargo bench --bench load` measures; a separate `cargo build --release` would rebuild it).
echo "building (release)..." >&2
BENCH=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null |
  grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)
BIN=target/release/linkgate
[ -x "$BENCH" ] || { echo "cannot find the benchmark harness" >&2; exit 1; }

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
PG_DIR=
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$PG_DIR" ] && [ -e "$PG_DIR/postmaster.pid" ]; then pg stop -m immediate >/dev/null 2>&1 || true; fi
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $WORK (wrk outputs, node logs; a stopped cluster in pg/)" >&2; else rm -rf "$WORK"; fi
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
# Connect, read, write errors and timeouts (wrk prints the line only when there were some).
sockerr() {
  awk '/^ *Socket errors:/ { gsub(/,/, ""); n = $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { echo "$(($1 / 1024)).$(( ($1 % 1024) * 10 / 1024 ))"; }

# CPU time (user + system, clock ticks) the processes SERVER_PIDS have used so far.
CLK_TCK=$(getconf CLK_TCK)
SERVER_PIDS=()
cpu_ticks() {
  local pid sum=0
  for pid in "${SERVER_PIDS[@]}"; do
    sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo "$sum"
}
# Runs wrk; NAME.out gets its output, NAME.cpu the servers' CPU ticks meanwhile (SERVER_PIDS).
run_wrk() { # NAME URL [wrk args...]
  local name=$1 url=$2 before
  shift 2
  before=$(cpu_ticks)
  taskset -c "$WRK_CPU" wrk -c "$CONNS" -d "${DURATION}s" --latency "$@" "$url" >"$WORK/$name.out" 2>&1
  echo $(($(cpu_ticks) - before)) >"$WORK/$name.cpu"
}
# The servers' CPU time per request of a wrk run, in microseconds.
cpu_us() { # FILE (NAME.out)
  awk -v ticks="$(cat "${1%.out}.cpu")" -v hz="$CLK_TCK" -v n="$(total "$1")" \
    'BEGIN { printf "%.1f", (n > 0 ? ticks * 1e6 / hz / n : 0) }'
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

# Starts a node on SERVER_CPU with CONFIG, its output in NAME.stdout and (appended, a restart
# keeps the first start's) NAME.stderr; sets NODE_PID and NODE_ADDR (where it listens).
start_node() { # CONFIG NAME
  RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN" --config "$1" >"$2.stdout" 2>>"$2.stderr" &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  NODE_ADDR=$(wait_line "$2.stdout" "listening on ")
}

# ---- PostgreSQL: a throwaway cluster ----------------------------------------------------------

# Runs a PostgreSQL program as the cluster's owner (postgres when we are root: initdb refuses root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg() { # pg_ctl ACTION [args]
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/log" "$@"
}
# A port below the kernel's range for outgoing connections (whose ports come and go).
free_port() {
  local port low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
  for _ in $(seq 1 100); do
    port=$((10000 + RANDOM % (low - 10000)))
    if [ -z "$(ss -Htln "sport = :$port")" ]; then echo "$port"; return 0; fi
  done
  echo "no free port" >&2
  return 1
}
PG_PORT=
pg_start() { # [extra postgres options]
  local as=()
  if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
  taskset -c "$DB_CPU" "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 $*" start >/dev/null
}
psql_q() { # DATABASE SQL
  psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}
if uses_postgres; then
  PG_DIR="$WORK/pg"
  mkdir -m 700 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  as_pg "$PG_BIN/initdb" -D "$PG_DIR" -A trust -U postgres >/dev/null
  PG_PORT=$(free_port)
  pg_start
  PG_SETTINGS=$(psql_q postgres "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'max_connections')")
  PG_VERSION=$(psql_q postgres "SHOW server_version")
fi

# ---- HAProxy in front of the nodes ------------------------------------------------------------

# The configuration README "Running more than one node" shows, with loopback addresses. One
# difference: `option forwardfor if-none` keeps the X-Forwarded-For address each wrk thread sends
# (wrk stands in for many clients); in production `option forwardfor` (without if-none) must
# replace what a client claims with the address HAProxy saw.
haproxy_config() { # PORT STATS_PORT NODE_ADDR...
  local port=$1 stats=$2 i=0
  shift 2
  cat <<EOF
global
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    option forwardfor if-none
    option redispatch
    retries 2
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s

frontend linkgate
    bind 127.0.0.1:$port
    default_backend linkgate_nodes

backend linkgate_nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    default-server check inter 2s fall 2 rise 2
EOF
  for addr in "$@"; do
    i=$((i + 1))
    echo "    server node$i $addr"
  done
  cat <<EOF

listen stats
    bind 127.0.0.1:$stats
    stats enable
    stats uri /stats
EOF
}

# Per node: name, HTTP requests, 5xx answers, check status (from HAProxy's CSV statistics,
# columns found by their names).
lb_stats() { # STATS_PORT
  curl -s "http://127.0.0.1:$1/stats;csv" | awk -F, '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "linkgate_nodes" && $2 ~ /^node/ {
      print $2, $col["req_tot"], $col["hrsp_5xx"], $col["status"] }'
}

# ---- one set-up: start, measure, stop ---------------------------------------------------------

declare -A GROWTH_REFRESH GROWTH_ROTATE RSS_IDLE RSS_LOADED LB_STATS
store_bytes() { # SETUP DIR
  case $1 in
    sled) du -sb "$2/data" | cut -f1 ;;
    *) psql_q "bench_$1" "SELECT pg_database_size(current_database())" ;;
  esac
}

measure() { # SETUP: sled | pgN
  local setup=$1 dir="$WORK/$1" count url=() target addrs=() node_pids=()
  case $setup in
    sled) count=1 ;;
    pg*)
      count=${setup#pg}
      psql_q postgres "CREATE DATABASE bench_$setup" >/dev/null
      url=("postgres://postgres@127.0.0.1:$PG_PORT/bench_$setup") ;;
  esac
  # A user, tokens for each scenario and a rotating client: one grant per connection and one
  # more per wrk thread (wrk calls request() once before the run to check the script, and the
  # chain rotate.lua hands that call is never sent).
  "$BENCH" --wrk-prepare "$dir" "$((CONNS + WRK_THREADS))" "${url[@]}" >/dev/null
  chmod 600 "$dir/linkgate.toml"
  for i in $(seq 1 "$count"); do
    local config="$dir/linkgate.toml"
    if [ "$i" -gt 1 ]; then # the same config but for the node's own storage.path
      config="$dir/node$i.toml"
      sed "s|^path = \"data\"|path = \"data$i\"|" "$dir/linkgate.toml" >"$config"
      chmod 600 "$config"
    fi
    start_node "$config" "$dir/node$i"
    node_pids+=("$NODE_PID")
    addrs+=("$NODE_ADDR")
  done
  target=${addrs[0]}
  SERVER_PIDS=("${node_pids[@]}")
  local lb_pid= stats_port=
  if [ "$count" -gt 1 ]; then
    local port up=0
    # Until every node's health check has passed (bounded); a port taken meanwhile by someone
    # else makes HAProxy exit, and it is tried again on other ports.
    for _ in 1 2 3; do
      port=$(free_port)
      stats_port=$(free_port)
      haproxy_config "$port" "$stats_port" "${addrs[@]}" >"$dir/haproxy.cfg"
      "$HAPROXY" -c -q -f "$dir/haproxy.cfg"
      taskset -c "$LB_CPU" "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
      lb_pid=$!
      PIDS+=("$lb_pid")
      for _ in $(seq 1 100); do
        kill -0 "$lb_pid" 2>/dev/null || break
        up=$( (lb_stats "$stats_port" || true) | awk '$4 == "UP"' | wc -l)
        [ "$up" = "$count" ] && break
        sleep 0.1
      done
      [ "$up" = "$count" ] && break
      kill "$lb_pid" 2>/dev/null || true
      wait "$lb_pid" 2>/dev/null || true
      cat "$dir/haproxy.log" >&2
    done
    [ "$up" = "$count" ] || { echo "HAProxy: only $up of $count nodes up" >&2; exit 1; }
    target="127.0.0.1:$port"
  fi
  sleep 1
  RSS_IDLE[$setup]=$(rss_kib "${node_pids[0]}")
  export ACCESS_TOKEN REFRESH_TOKEN CLIENT_BASIC ROTATING_BASIC ROTATING_FILE
  ACCESS_TOKEN=$(cat "$dir/access.txt")
  REFRESH_TOKEN=$(cat "$dir/refresh.txt")
  CLIENT_BASIC=$(printf '%s' 'alexa-skill:alexa-secret-0123456789' | base64 -w0)
  ROTATING_BASIC=$(printf '%s' 'rotating:rotating-secret-0123456789' | base64 -w0)
  ROTATING_FILE="$dir/rotating.txt"

  # The answers the shaped baseline repeats (the first set-up's: the same sizes elsewhere); -f:
  # an error answer must not become the floor.
  if [ ! -e "$WORK/shape-token.http" ]; then
    curl -sfi -H "Authorization: Bearer $ACCESS_TOKEN" "http://$target/userinfo" >"$WORK/shape-userinfo.http"
    curl -sfi -H "Authorization: Basic $CLIENT_BASIC" -H "Content-Type: application/x-www-form-urlencoded" \
      -d "token=$ACCESS_TOKEN" "http://$target/introspect" >"$WORK/shape-introspect.http"
    curl -sfi -H "Authorization: Basic $CLIENT_BASIC" -H "Content-Type: application/x-www-form-urlencoded" \
      -d "grant_type=refresh_token&refresh_token=$REFRESH_TOKEN" "http://$target/token" >"$WORK/shape-token.http"
  fi
  # Warm-up, not measured: the first requests open the nodes' database connections (a
  # PostgreSQL backend each, up to pool_size per node), which would otherwise land in the
  # first endpoint's p99.
  taskset -c "$WRK_CPU" wrk -c "$CONNS" -d "${WARMUP}s" -t "$WRK_THREADS" -s tools/wrk/userinfo.lua \
    "http://$target/userinfo" >"$WORK/$setup-warmup.out" 2>&1
  run_wrk "$setup-userinfo" "http://$target/userinfo" -t "$WRK_THREADS" -s tools/wrk/userinfo.lua
  run_wrk "$setup-introspect" "http://$target/introspect" -t "$WRK_THREADS" -s tools/wrk/introspect.lua
  local before after
  before=$(store_bytes "$setup" "$dir")
  run_wrk "$setup-refresh" "http://$target/token" -t "$WRK_THREADS" -s tools/wrk/refresh.lua
  after=$(store_bytes "$setup" "$dir")
  GROWTH_REFRESH[$setup]=$(( (after - before) * 100000 / ($(total "$WORK/$setup-refresh.out") + 1) ))
  before=$after
  # One chain per connection, WRK_THREADS threads as for the others (rotate.lua hands each
  # request a free chain of its thread).
  export ROTATING_THREADS="$WRK_THREADS"
  run_wrk "$setup-rotate" "http://$target/token" -t "$WRK_THREADS" -s tools/wrk/rotate.lua
  if grep -q '^requests without a free chain' "$WORK/$setup-rotate.out"; then
    echo "$setup: $(grep '^requests without a free chain' "$WORK/$setup-rotate.out")" >&2
  fi
  after=$(store_bytes "$setup" "$dir")
  GROWTH_ROTATE[$setup]=$(( (after - before) * 100000 / ($(total "$WORK/$setup-rotate.out") + 1) ))
  RSS_LOADED[$setup]=$(rss_kib "${node_pids[0]}")
  # The code exchange, last: its codes are stored just before it, so that the figures above
  # are not those of a store full of codes. On PostgreSQL the harness stores them while the
  # nodes run (as another node would); sled's store is one process's, so the node stops for it
  # and starts again on the same data.
  if [ "$setup" = sled ]; then
    kill "${node_pids[0]}"
    wait "${node_pids[0]}" 2>/dev/null || true
    "$BENCH" --wrk-codes "$dir" "$(codes_for "$setup")"
    start_node "$dir/linkgate.toml" "$dir/node1"
    node_pids=("$NODE_PID")
    target=$NODE_ADDR
    SERVER_PIDS=("${node_pids[@]}")
  else
    "$BENCH" --wrk-codes "$dir" "$(codes_for "$setup")" "${url[@]}"
  fi
  export CODES_FILE="$dir/codes.txt" CODES_THREADS="$WRK_THREADS" CODES_REDIRECT
  run_wrk "$setup-exchange" "http://$target/token" -t "$WRK_THREADS" -s tools/wrk/exchange.lua
  if grep -q '^codes ran out' "$WORK/$setup-exchange.out"; then
    echo "$setup: $(grep '^codes ran out' "$WORK/$setup-exchange.out")" >&2
  fi
  if [ -n "$lb_pid" ]; then
    # Per node: requests answered, 5xx, health-check state.
    LB_STATS[$setup]=$(lb_stats "$stats_port" |
      awk '{ printf "%s%s: %s requests, %s 5xx, %s", sep, $1, $2, $3, $4; sep = "; " }')
    kill "$lb_pid"
    wait "$lb_pid" 2>/dev/null || true
  fi
  for pid in "${node_pids[@]}"; do kill "$pid"; done
  for pid in "${node_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for i in $(seq 1 "$count"); do
    # Anything but the bench config's expected warning (plain http) is shown.
    if [ -n "$(grep -v 'is plain http' "$dir/node$i.stderr")" ]; then
      echo "--- node $i ($setup) logged warnings or errors:" >&2
      grep -v 'is plain http' "$dir/node$i.stderr" | sed 's/^[0-9TZ:.-]* *//' | sort | uniq -c | sort -rn | head -n 20 >&2
    fi
  done
}

# ---- statements per request (PostgreSQL) --------------------------------------------------------

# Restarts the cluster with pg_stat_statements (not loaded during the timed runs), starts one
# node on a fresh database and sends COUNT_N requests of each kind, one at a time.
count_queries() {
  pg stop -m fast >/dev/null
  pg_start "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on"
  psql_q postgres "CREATE DATABASE bench_count" >/dev/null
  psql_q bench_count "CREATE EXTENSION pg_stat_statements" >/dev/null
  local dir="$WORK/count"
  "$BENCH" --wrk-prepare "$dir" 1 "postgres://postgres@127.0.0.1:$PG_PORT/bench_count" >/dev/null
  "$BENCH" --wrk-codes "$dir" $((COUNT_N + 3)) "postgres://postgres@127.0.0.1:$PG_PORT/bench_count"
  start_node "$dir/linkgate.toml" "$dir/node"
  local pid=$NODE_PID addr=$NODE_ADDR
  local access refresh basic rbasic token
  access=$(cat "$dir/access.txt")
  refresh=$(cat "$dir/refresh.txt")
  token=$(head -n1 "$dir/rotating.txt")
  basic=$(printf '%s' 'alexa-skill:alexa-secret-0123456789' | base64 -w0)
  rbasic=$(printf '%s' 'rotating:rotating-secret-0123456789' | base64 -w0)
  # One warm-up request of each kind (prepares the statements on a connection), then count.
  local kinds=(userinfo introspect refresh rotate exchange) n
  local codes=()
  mapfile -t codes <"$dir/codes.txt"
  for kind in "${kinds[@]}"; do
    for round in warm count; do
      n=$COUNT_N
      if [ "$round" = warm ]; then n=3; fi
      psql_q bench_count "SELECT pg_stat_statements_reset()" >/dev/null
      for _ in $(seq 1 "$n"); do
        case $kind in
          userinfo) curl -sf -o /dev/null -H "Authorization: Bearer $access" "http://$addr/userinfo" ;;
          introspect) curl -sf -o /dev/null -H "Authorization: Basic $basic" -d "token=$access" "http://$addr/introspect" ;;
          refresh) curl -sf -o /dev/null -H "Authorization: Basic $basic" -d "grant_type=refresh_token&refresh_token=$refresh" "http://$addr/token" ;;
          rotate)
            token=$(curl -sf -H "Authorization: Basic $rbasic" -d "grant_type=refresh_token&refresh_token=$token" "http://$addr/token" |
              sed -n 's/.*"refresh_token":"\([^"]*\)".*/\1/p')
            [ -n "$token" ] || { echo "rotation chain broke during the count" >&2; exit 1; } ;;
          exchange)
            curl -sf -o /dev/null -H "Authorization: Basic $basic" \
              -d "grant_type=authorization_code&code=${codes[0]}&redirect_uri=$CODES_REDIRECT" "http://$addr/token"
            codes=("${codes[@]:1}") ;;
        esac || { echo "a $kind request failed during the count" >&2; exit 1; }
      done
      if [ "$round" = count ]; then
        psql_q bench_count "SELECT calls, regexp_replace(query, '\s+', ' ', 'g') FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench_count') AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC, query" >"$WORK/count-$kind.txt"
      fi
    done
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

# ---- the run ----------------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Baseline: hyper's hello-world (the bench harness's --baseline-server), alone on its core. Run
# before and after linkgate; the ratios use the faster of the two, so that a busy moment of the
# machine during one baseline run does not flatter linkgate.
baseline() { # NAME
  taskset -c "$SERVER_CPU" "$BENCH" --baseline-server >"$WORK/$1.addr" &
  local pid=$!
  PIDS+=("$pid")
  SERVER_PIDS=("$pid")
  run_wrk "$1" "http://$(wait_line "$WORK/$1.addr" "")/" -t "$WRK_THREADS"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
baseline baseline
for setup in "${SETUPS[@]}"; do measure "$setup"; done
baseline baseline2

# The shaped baseline (bench harness --shaped-server): bare hyper reading each request of the
# scenarios above and answering with linkgate's own answer to it (status, headers, body, as
# captured): the floor for each exchange without linkgate's work.
taskset -c "$SERVER_CPU" "$BENCH" --shaped-server "$WORK" >"$WORK/shaped.addr" &
shaped_pid=$!
PIDS+=("$shaped_pid")
SERVER_PIDS=("$shaped_pid")
shaped=$(wait_line "$WORK/shaped.addr" "")
run_wrk shaped-userinfo "http://$shaped/userinfo" -t "$WRK_THREADS" -s tools/wrk/userinfo.lua
run_wrk shaped-introspect "http://$shaped/introspect" -t "$WRK_THREADS" -s tools/wrk/introspect.lua
run_wrk shaped-refresh "http://$shaped/token" -t "$WRK_THREADS" -s tools/wrk/refresh.lua
kill "$shaped_pid"
wait "$shaped_pid" 2>/dev/null || true
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
if uses_postgres; then count_queries; fi

reference=baseline
if [ "$(rate "$WORK/baseline2.out")" -gt "$(rate "$WORK/baseline.out")" ]; then reference=baseline2; fi
base_rate=$(rate "$WORK/$reference.out")
base_p99=$(p99_ms "$WORK/$reference.out")
row() { # LABEL FILE
  local r p
  r=$(rate "$2"); p=$(p99_ms "$2")
  printf '%-46s %10s %9s %7s %9s %8s %8s %9s\n' "$1" "$r" "$p" \
    "$(awk -v a="$r" -v b="$base_rate" 'BEGIN { printf "%.2f", a / b }')" \
    "$(awk -v a="$p" -v b="$base_p99" 'BEGIN { printf "%.2f", a / b }')" \
    "$(non200 "$2")" "$(sockerr "$2")" "$(cpu_us "$2")"
}
echo
echo "wrk, $CONNS connections, ${DURATION} s each; linkgate and the baseline on CPU $SERVER_CPU, wrk on CPU $WRK_CPU$(uses_postgres && echo ", PostgreSQL on CPU $DB_CPU")$(uses_balancer && echo ", HAProxy on CPU $LB_CPU"); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average before: $LOAD_BEFORE, after: $LOAD_AFTER; ratios to the faster baseline run"
if uses_postgres; then echo "PostgreSQL $PG_VERSION: $PG_SETTINGS"; fi
echo "CPU µs/req: the server's CPU time (user + system; linkgate's nodes, not PostgreSQL or HAProxy) per request"
printf '%-46s %10s %9s %7s %9s %8s %8s %9s\n' "request" "req/s" "p99 ms" "ratio" "p99 ratio" "non-200" "sock err" "CPU µs/req"
row "baseline: hyper hello-world (before)" "$WORK/baseline.out"
for setup in "${SETUPS[@]}"; do
  case $setup in
    sled) title="sled" ;;
    pg1) title="PostgreSQL, one node" ;;
    pg*) title="PostgreSQL, ${setup#pg} nodes behind HAProxy" ;;
  esac
  echo "-- $title"
  row "GET /userinfo" "$WORK/$setup-userinfo.out"
  row "POST /introspect" "$WORK/$setup-introspect.out"
  row "POST /token refresh, no rotation" "$WORK/$setup-refresh.out"
  row "POST /token refresh, rotation" "$WORK/$setup-rotate.out"
  row "POST /token authorization_code, once each" "$WORK/$setup-exchange.out"
done
row "baseline: hyper hello-world (after)" "$WORK/baseline2.out"
echo "-- the floor: bare hyper, the same requests, linkgate's answers (shaped baseline)"
row "GET /userinfo" "$WORK/shaped-userinfo.out"
row "POST /introspect" "$WORK/shaped-introspect.out"
row "POST /token refresh, no rotation" "$WORK/shaped-refresh.out"
for kind in userinfo introspect refresh; do
  for setup in "${SETUPS[@]}"; do
    printf '%s %s: linkgate / its floor %s; CPU per request beyond the floor %s µs\n' "$setup" "$kind" \
      "$(awk -v a="$(rate "$WORK/$setup-$kind.out")" -v b="$(rate "$WORK/shaped-$kind.out")" 'BEGIN { printf "%.2f", a / b }')" \
      "$(awk -v a="$(cpu_us "$WORK/$setup-$kind.out")" -v b="$(cpu_us "$WORK/shaped-$kind.out")" 'BEGIN { printf "%+.1f", a - b }')"
  done
done
echo
for setup in "${SETUPS[@]}"; do
  what="data directory"
  case $setup in pg*) what="database (pg_database_size)" ;; esac
  echo "$setup: $what growth per 100k refreshes: no rotation ${GROWTH_REFRESH[$setup]} bytes, rotation ${GROWTH_ROTATE[$setup]} bytes"
  echo "$setup: linkgate RSS (node 1): idle $(mib "${RSS_IDLE[$setup]}") MiB, after the load $(mib "${RSS_LOADED[$setup]}") MiB"
  if [ -n "${LB_STATS[$setup]:-}" ]; then echo "$setup: HAProxy per node: ${LB_STATS[$setup]}"; fi
done
if uses_postgres; then
  echo
  echo "SQL statements per request (pg_stat_statements, $COUNT_N requests of each kind, one node, one at a time):"
  for kind in userinfo introspect refresh rotate exchange; do
    awk -F'|' -v n="$COUNT_N" -v kind="$kind" '
      { total += $1; lines = lines sprintf("    %6.2f  %s\n", $1 / n, $2) }
      END { printf "  %-10s %.2f statements per request\n%s", kind, total / n, lines }' "$WORK/count-$kind.txt"
  done
fi
