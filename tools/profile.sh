#!/usr/bin/env bash
# Instruction profile of the hot endpoints, against the bare hyper baseline, with callgrind.
# callgrind counts instructions, not seconds: the figures repeat whatever else the machine does.
# Kernel work (the TCP stack, fsync) is not counted; the timed benchmark covers that.
#
#   tools/profile.sh [REQUESTS]                     # default 2000 per endpoint; output in target/profile/
#   tools/profile.sh [REQUESTS] --store postgres    # one node on a throwaway cluster (tools/with-postgres.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
N=2000
store=sled
while [ $# -gt 0 ]; do
  case $1 in
    --store) store=${2:?--store sled|postgres}; shift 2 ;;
    [0-9]*) N=$1; shift ;;
    *) echo "usage: $0 [REQUESTS] [--store sled|postgres]" >&2; exit 2 ;;
  esac
done
case $store in
  sled) STORAGE='path = "data"' ;;
  postgres)
    # A cluster of its own, removed at the end; memory serves the checks (postgres_memory.rs).
    [ -n "${LINKGATE_TEST_POSTGRES:-}" ] || exec bash tools/with-postgres.sh "$0" "$N" --store postgres
    database="profile_$$"
    psql -X -q -h 127.0.0.1 -p "${LINKGATE_TEST_POSTGRES##*:}" -U postgres -d postgres -c "CREATE DATABASE $database"
    STORAGE="path = \"data\"
backend = \"postgres\"
url = \"$LINKGATE_TEST_POSTGRES/$database\"" ;;
  *) echo "--store: sled or postgres" >&2; exit 2 ;;
esac
OUT=target/profile
rm -rf "$OUT" && mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }

cargo build --quiet --profile profiling
cargo bench --quiet --bench load --profile profiling --no-run
LINKGATE="$PWD/target/profiling/linkgate"
BENCH=$(ls -t target/profiling/deps/load-* | grep -v '\.d$' | head -1)

cat > "$OUT/linkgate.toml" <<TOML
[server]
listen = "127.0.0.1:18480"
public_url = "http://127.0.0.1:18480"
[storage]
$STORAGE
[ui]
title = "Profile"
[[clients]]
id = "alexa-skill"
secret = "profile-secret-0123456789"
name = "Profile"
redirect_uris = ["https://pitangui.amazon.com/api/skill/link/M2PROFILE"]
TOML
echo profile-password | "$LINKGATE" --config "$OUT/linkgate.toml" --add-user alice >/dev/null

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# measure NAME PID PORT KIND: on a server already running under callgrind, warm up, then count
# N requests of KIND only, and record the instructions per request.
measure() {
  local name=$1 pid=$2 port=$3 kind=$4
  wait_port "$port"
  python3 tools/profile_client.py "$port" "$kind" 200 "$OUT/tokens.json"
  callgrind_control -i on "$pid" >/dev/null
  python3 tools/profile_client.py "$port" "$kind" "$N" "$OUT/tokens.json"
  callgrind_control -i off "$pid" >/dev/null
  # TERM, not INT: a background job of a script starts with SIGINT ignored.
  kill "$pid"; wait "$pid" || true
  local total
  total=$(callgrind_annotate "$OUT/$name.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
  echo "$name $((total / N))" >>"$OUT/per-request.txt"
}

# callgrind NAME COMMAND...: starts COMMAND under callgrind, instrumentation off until measured.
callgrind() {
  local name=$1; shift
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$name.out" "$@" \
    >"$OUT/$name.stdout" 2>"$OUT/$name.log" &
}

# A linked user and its tokens, from a plain (unprofiled) run.
"$LINKGATE" --config "$OUT/linkgate.toml" >"$OUT/link.log" 2>&1 &
pid=$!; wait_port 18480
python3 tools/profile_client.py 18480 link 0 >"$OUT/tokens.json"
kill -INT "$pid"; wait "$pid" || true

# The baseline first (the report divides by it); it prints its port on stdout.
callgrind baseline "$BENCH" --baseline-server
pid=$!
for _ in $(seq 1 200); do [ -s "$OUT/baseline.stdout" ] && break; sleep 0.1; done
measure baseline "$pid" "$(cut -d: -f2 "$OUT/baseline.stdout")" baseline

for kind in userinfo introspect refresh; do
  callgrind "$kind" "$LINKGATE" --config "$OUT/linkgate.toml"
  measure "$kind" $! 18480 "$kind"
done

echo "instructions per request (user space, all threads; $N requests each):"
base=$(awk '/^baseline/ {print $2}' "$OUT/per-request.txt")
awk -v b="$base" '{printf "  %-10s %8d  %5.2fx baseline\n", $1, $2, $2 / b}' "$OUT/per-request.txt"
echo "top functions (inclusive) per endpoint: callgrind_annotate --inclusive=yes $OUT/<endpoint>.out"
