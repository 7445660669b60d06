#!/usr/bin/env bash
# The main job: a broker dropping 5% of the envelopes it forwards, a bank
# service whose handler is not idempotent, and several clients moving money.
# Mid-run the bank server is killed with kill -9 and restarted, then the
# broker is. At the end the bank's books must balance, no transfer may have
# been applied twice, and every transfer must have an answer.
# Every link runs CurveZMQ: the demo makes a key pair for the broker, the
# bank server and the tellers, and a keys file that lets the tellers call
# bank.* and the bank serve it (docs/SECURITY.md).
#
# Usage: scripts/demo.sh   (env: DEMO_PORT, DEMO_CLIENTS, DEMO_COUNT,
#                           DEMO_LOSS, BUILD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >/dev/null
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" >/dev/null
cmake --build "$build_dir" -j"$(nproc 2>/dev/null || echo 2)" \
  --target rejoin-broker rejoin-keygen bank_server bank_client >/dev/null

port=${DEMO_PORT:-5555}
clients=${DEMO_CLIENTS:-3}
count=${DEMO_COUNT:-2000}
loss=${DEMO_LOSS:-0.05}
endpoint="tcp://127.0.0.1:$port"
broker_bin="$build_dir/broker/rejoin-broker"
server_bin="$build_dir/examples/bank_server"
client_bin="$build_dir/examples/bank_client"
work=$(mktemp -d "${TMPDIR:-/tmp}/rejoin-demo-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Keys: one pair per party, the public halves in the broker's keys file.
keygen="$build_dir/broker/rejoin-keygen"
for who in broker bank teller; do
  "$keygen" "$work/$who.key" >/dev/null
done
pub() { sed -nE 's/^public-key (.*)$/\1/p' "$work/$1.key.pub"; }
cat >"$work/keys" <<EOF
principal bank key $(pub bank)
principal teller key $(pub teller)
allow teller call bank.*
allow bank serve bank.*
EOF
curve_broker=(--curve-key "$work/broker.key" --keys "$work/keys")
curve_as() { echo --curve-key "$work/$1.key" --broker-key "$work/broker.key.pub"; }

start_ns=$(date +%s%N)
log() {
  local ms=$((($(date +%s%N) - start_ns) / 1000000))
  printf '[%3d.%03ds] %s\n' $((ms / 1000)) $((ms % 1000)) "$*"
}

start_broker() {
  "$broker_bin" --endpoint "$endpoint" "${curve_broker[@]}" \
    --inject-loss "$loss" --seed "$1" \
    --heartbeat-ms 100 --probe-ms 30 --grace-ms 300 --log-level warn \
    >>"$work/broker.log" 2>&1 &
  broker_pid=$!
  pids+=("$broker_pid")
}
start_server() {
  # shellcheck disable=SC2046
  "$server_bin" --endpoint "$endpoint" $(curve_as bank) --server-id bank/bank-1 \
    --journal "$work/server-journal" --ledger "$work/bank.ledger" \
    --concurrency 4 >>"$work/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
}

echo "rejoin demo: broker on $endpoint (CurveZMQ) dropping ${loss} of forwarded envelopes"
echo "             bank.transfer (not idempotent, resolve hook), $clients clients x $count transfers"
start_broker 1
start_server
sleep 0.3
client_pids=()
for i in $(seq 1 "$clients"); do
  # shellcheck disable=SC2046
  "$client_bin" --endpoint "$endpoint" $(curve_as teller) --session "teller/$i" \
    --journal "$work/client-$i" --count "$count" --window 8 --seed "$i" \
    >"$work/client-$i.out" 2>&1 &
  client_pids+=($!)
  pids+=($!)
done
log "started broker, bank server and $clients clients"

sleep 1.5
{ kill -9 "$server_pid"; wait "$server_pid"; } 2>/dev/null || true
log "kill -9 bank server (pid $server_pid)"
start_server
log "bank server restarted"

sleep 1.5
{ kill -9 "$broker_pid"; wait "$broker_pid"; } 2>/dev/null || true
log "kill -9 broker (pid $broker_pid)"
start_broker 2
log "broker restarted (new epoch)"

failed=0
for p in "${client_pids[@]}"; do
  wait "$p" || failed=$((failed + 1))
done
log "all clients finished ($failed reported a problem)"
kill -TERM "$server_pid" "$broker_pid" 2>/dev/null || true
sleep 0.3

# What the clients saw.
ok=0 rejected=0 other=0 resent=0 recovered=0
for i in $(seq 1 "$clients"); do
  line=$(grep -E '^bank_client: [0-9]+ transfers:' "$work/client-$i.out" || true)
  if [ -z "$line" ]; then
    echo "client $i did not finish:"; tail -5 "$work/client-$i.out"; failed=1
    continue
  fi
  read -r c_ok c_rej c_other c_resent c_rec <<<"$(echo "$line" | sed -E \
    's/.*: ([0-9]+) ok, ([0-9]+) rejected, ([0-9]+) other; resent ([0-9]+), recovered ([0-9]+).*/\1 \2 \3 \4 \5/')"
  ok=$((ok + c_ok)); rejected=$((rejected + c_rej)); other=$((other + c_other))
  resent=$((resent + c_resent)); recovered=$((recovered + c_rec))
done
issued=$((clients * count))
completed=$((ok + rejected + other))

# What the bank's own books say.
check=$("$server_bin" --check --ledger "$work/bank.ledger" || true)
total=$(echo "$check" | sed -nE 's/^total: (-?[0-9]+) \(expected (-?[0-9]+)\)/\1 \2/p')
applied=$(echo "$check" | sed -nE 's/^transfers: ([0-9]+) applied, ([0-9]+) rejected.*/\1 \2/p')
dups=$(echo "$check" | sed -nE 's/^duplicates: ([0-9]+)/\1/p')
read -r have want <<<"$total"
read -r led_applied led_rejected <<<"$applied"
balance_ok=false
[ "$have" = "$want" ] && balance_ok=true
lost=$((issued - completed))
# Every answered transfer was executed once, and every execution answered.
unanswered=$((led_applied + led_rejected - ok - rejected))

echo
echo "summary"
echo "  transfers issued            $issued"
echo "  answered ok / rejected      $ok / $rejected   (rejected: insufficient funds)"
echo "  answered otherwise          $other"
echo "  bank ledger applied/rejected $led_applied / $led_rejected"
echo "  executions without answer   $unanswered"
echo "  requests resent             $resent"
echo "  responses recovered         $recovered"
echo "  bank total                  $have (expected $want)"
echo "  duplicate executions        $dups"
echo "demo: issued=$issued completed=$completed lost=$lost duplicate_executions=$dups recoveries=$((resent + recovered)) balance_ok=$balance_ok"

if [ "$failed" -ne 0 ] || [ "$lost" -ne 0 ] || [ "$dups" -ne 0 ] || \
   [ "$unanswered" -ne 0 ] || [ "$other" -ne 0 ] || [ "$balance_ok" != true ]; then
  exit 1
fi
