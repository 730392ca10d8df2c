#!/usr/bin/env bash
# Writes linkgate.order: the functions that run when linkgate starts and serves the browser flow,
# /userinfo, /introspect and refresh, on sled and on PostgreSQL, which build.rs hands to the
# linker so they sit together at the start of the text. The kernel maps 64 KiB of the binary
# around each page a process touches; with these functions spread over 8.9 MB of text, start-up
# alone mapped in 5.6 MiB of it.
#
#   tools/order.sh        # ~10 minutes; then commit linkgate.order. Needs valgrind (and perf)
#
# The names carry rustc's hashes of the crate and its dependencies: after a Rust or dependency
# upgrade, or new hot functions, run it again. A stale name is skipped by the linker, not an error.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
# A throwaway PostgreSQL cluster for the PostgreSQL runs, removed at the end.
[ -n "${LINKGATE_TEST_POSTGRES:-}" ] || exec bash tools/with-postgres.sh "$0" "$@"
OUT=target/order-run
rm -rf "$OUT" && mkdir -p "$OUT"
: >"$OUT/order"
MAP="$PWD/target/order.map"

# build: the release binary with the order so far and the linker's map of it (callgrind and
# perf name the code of a binary without symbols by address; the map names the address). The
# copy stays as mapped while the next build runs.
build() {
  cp "$OUT/order" linkgate.order
  LINKGATE_MAP="$MAP" cargo build --quiet --release --locked
  cp target/release/linkgate "$OUT/linkgate"
}
LINKGATE="$PWD/$OUT/linkgate"

# configure STORE: a config, an empty store and the user alice.
databases=0
configure() {
  local storage='path = "data"'
  rm -rf "$OUT/data"
  if [ "$1" = postgres ]; then
    databases=$((databases + 1))
    psql -X -q -h 127.0.0.1 -p "${LINKGATE_TEST_POSTGRES##*:}" -U postgres -d postgres \
      -c "CREATE DATABASE order_$databases"
    storage="path = \"data\"
backend = \"postgres\"
url = \"$LINKGATE_TEST_POSTGRES/order_$databases\""
  fi
  cat >"$OUT/linkgate.toml" <<TOML
[server]
listen = "127.0.0.1:18481"
public_url = "http://127.0.0.1:18481"
[storage]
$storage
[ui]
title = "Order"
[[clients]]
id = "alexa-skill"
secret = "profile-secret-0123456789"
name = "Order"
redirect_uris = ["https://pitangui.amazon.com/api/skill/link/M2PROFILE"]
TOML
  chmod 600 "$OUT/linkgate.toml"
  echo profile-password | "$LINKGATE" --config "$OUT/linkgate.toml" --add-user alice >/dev/null
}

wait_port() {
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on port $1 after 60 s; see $OUT/stdout" >&2
  return 1
}
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT

# run_client [CALLGRIND_PID]: the browser flow once, then a few of each token request; under
# callgrind, start-up and idle are dumped first, so their functions lead.
run_client() {
  wait_port 18481
  sleep 2
  [ -z "${1:-}" ] || callgrind_control -d start "$1" >/dev/null
  python3 tools/profile_client.py 18481 link 0 >"$OUT/tokens.json"
  for kind in userinfo introspect refresh; do
    python3 tools/profile_client.py 18481 "$kind" 20 "$OUT/tokens.json"
  done
}

# add: appends the names on stdin that the order lacks; prints how many.
add() {
  cat "$OUT/order" - | awk '!seen[$0]++' >"$OUT/order.next"
  echo $(($(wc -l <"$OUT/order.next") - $(wc -l <"$OUT/order")))
  mv "$OUT/order.next" "$OUT/order"
}

build
for store in sled postgres; do
  configure "$store"
  valgrind --tool=callgrind --dump-instr=no --compress-strings=no \
    --callgrind-out-file="$OUT/run.%p" "$LINKGATE" --config "$OUT/linkgate.toml" \
    >"$OUT/stdout" 2>"$OUT/valgrind.log" &
  pid=$!
  run_client "$pid"
  kill "$pid"; wait "$pid" || true
  echo "$store under callgrind: $(python3 tools/order_symbols.py callgrind "$MAP" "$LINKGATE" \
    "$OUT/run.$pid.1" "$OUT/run.$pid" | add) functions"
  pid=
done

# Then what runs natively but not under valgrind (SHA and CRC instructions valgrind lacks), from
# the page faults of native runs with the order so far: each round finds the first function of
# each 64 KiB still faulted in outside the ordered code.
for round in 1 2 3; do
  command -v perf >/dev/null || { echo "no perf: only what ran under callgrind is ordered"; break; }
  build
  added=0
  for store in sled postgres; do
    configure "$store"
    perf record -q -e page-faults -c 1 -d -o "$OUT/faults.data" \
      "$LINKGATE" --config "$OUT/linkgate.toml" >"$OUT/stdout" 2>&1 &
    pid=$!
    run_client
    kill "$pid"; wait "$pid" || true
    pid=
    perf script -i "$OUT/faults.data" --show-mmap-events -F addr >"$OUT/faults.txt" 2>/dev/null
    n=$(python3 tools/order_symbols.py faults "$MAP" "$LINKGATE" "$OUT/faults.txt" | add)
    echo "native round $round, $store: $n more functions"
    added=$((added + n))
  done
  [ "$added" -gt 0 ] || break
done
cp "$OUT/order" linkgate.order
echo "linkgate.order: $(wc -l <linkgate.order) functions"
