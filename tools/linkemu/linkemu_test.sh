#!/usr/bin/env bash
# Self-test of linkemu.sh (ctest: linkemu_test). Needs root; exits 77 (skip)
# where network namespaces, veth or tbf are unavailable. Measures real TCP
# transfers edge -> cloud through the shaped veth, a rate change while a
# transfer is in flight, a trace replay, and the cgroup CPU cap.
# Prints "N passed, M failed"; exits 1 on any failure. About 20 s.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LINKEMU=$here/linkemu.sh
PY=/usr/bin/python3 # Debian's interpreter; a python3 earlier on PATH may differ
NAME=lkt$$
passed=0
failed=0

pass() {
  passed=$((passed + 1))
  echo "ok   $*"
}

fail() {
  failed=$((failed + 1))
  echo "FAIL $*"
}

# ------------------------------------------------------------------ skip?
check_out=$("$LINKEMU" check 2>&1)
check_rc=$?
if [ "$check_rc" -eq 77 ]; then
  echo "$check_out"
  echo "skipped: linkemu check says namespaces cannot be used here"
  exit 77
elif [ "$check_rc" -ne 0 ]; then
  echo "$check_out"
  echo "FAIL check exited $check_rc (want 0 or 77)"
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -x "$PY" ]; then
  echo "skipped: $PY not found (the transfer helpers need it)"
  exit 77
fi
pass "check: $check_out"

work=$(mktemp -d /tmp/linkemu_test.XXXXXX)
srv_pid=""
cleanup() {
  if [ -n "$srv_pid" ]; then
    kill "$srv_pid" 2>/dev/null
    wait "$srv_pid" 2>/dev/null
  fi
  "$LINKEMU" down "$NAME" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
# server.py HOST: accepts connections one at a time. Each starts with a 16-byte
# header (payload length, progress mark); the server prints "progress" once the
# mark is reached (0: never), then replies one byte after the last payload byte.
cat >"$work/server.py" <<'EOF'
import socket, struct, sys

def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        b = c.recv(n - len(buf))
        if not b:
            raise EOFError("peer closed")
        buf += b
    return buf

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0))
s.listen(8)
print("ready", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    try:
        n, mark = struct.unpack("!QQ", recv_exact(c, 16))
        got, told = 0, False
        while got < n:
            b = c.recv(min(1 << 20, n - got))
            if not b:
                raise EOFError("peer closed after %d of %d bytes" % (got, n))
            got += len(b)
            if mark and not told and got >= mark:
                print("progress", got, flush=True)
                told = True
        c.sendall(b"K")
        print("done", got, flush=True)
    except Exception as e:  # keep serving; the client reports the failure
        print("error", e, flush=True)
    finally:
        c.close()
EOF

# client.py HOST PORT BYTES MARK: prints "BYTES SECONDS MBIT", timed from the
# first payload byte handed to the kernel to the server's ack of the last one.
cat >"$work/client.py" <<'EOF'
import socket, struct, sys, time

host, port, n, mark = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
payload = bytes(n)
c = socket.create_connection((host, port), timeout=60)
c.sendall(struct.pack("!QQ", n, mark))
t0 = time.perf_counter()
c.sendall(payload)
if c.recv(1) != b"K":
    sys.exit("no ack")
dt = time.perf_counter() - t0
print(n, "%.3f" % dt, "%.2f" % (n * 8 / dt / 1e6))
EOF

# spin.py N: a CPU-bound loop; prints its own wall time in seconds.
cat >"$work/spin.py" <<'EOF'
import sys, time
t = time.perf_counter()
x = 0
for i in range(int(sys.argv[1])):
    x += i
print("%.3f" % (time.perf_counter() - t))
EOF

# within PCT MEASURED TARGET
within() {
  awk -v p="$1" -v m="$2" -v t="$3" 'BEGIN { exit !(m >= t * (1 - p / 100) && m <= t * (1 + p / 100)) }'
}

qdisc_rate() { # the rate field of the tbf on NAME-e ("20Mbit")
  "$LINKEMU" exec "$NAME" edge tc qdisc show dev "$NAME-e" |
    awk '$2 == "tbf" { for (i = 1; i < NF; i++) if ($i == "rate") print $(i + 1) }'
}

# ------------------------------------------------------------- namespaces
if up_out=$("$LINKEMU" up "$NAME" 2>&1); then
  pass "up $NAME: $(echo "$up_out" | tr '\n' ' ')"
else
  fail "up $NAME: $up_out"
  echo "$passed passed, $failed failed"
  exit 1
fi
edge_ip=$(awk '$1 == "edge" { print $2 }' <<<"$up_out")
cloud_ip=$(awk '$1 == "cloud" { print $2 }' <<<"$up_out")
if [[ $edge_ip =~ ^10\.213\.[0-9]+\.1$ ]] && [ "$cloud_ip" = "${edge_ip%.1}.2" ] &&
  [ "$("$LINKEMU" addr "$NAME" cloud 2>&1)" = "$cloud_ip" ]; then
  pass "addresses edge $edge_ip cloud $cloud_ip"
else
  fail "addresses: up printed '$up_out', addr says '$("$LINKEMU" addr "$NAME" cloud 2>&1)'"
fi

if again=$("$LINKEMU" up "$NAME" 2>&1); then
  fail "second up $NAME succeeded: $again"
else
  if grep -q "already exists" <<<"$again"; then
    pass "second up fails clearly"
  else
    fail "second up failed without saying why: $again"
  fi
fi

if bad=$("$LINKEMU" up "${NAME}m" --mtu 100 2>&1); then
  fail "up --mtu 100 succeeded: $bad"
  "$LINKEMU" down "${NAME}m" >/dev/null 2>&1
elif grep -q "576-65535" <<<"$bad"; then
  pass "up --mtu 100 refused clearly"
else
  fail "up --mtu 100 failed without saying why: $bad"
fi
if "$LINKEMU" up "${NAME}m" --mtu 576 >/dev/null 2>&1 &&
  "$LINKEMU" exec "${NAME}m" edge ip link show dev "${NAME}m-e" | grep -q "mtu 576 "; then
  pass "up --mtu 576 sets the pair's MTU"
else
  fail "up --mtu 576: $("$LINKEMU" exec "${NAME}m" edge ip link show 2>&1)"
fi
"$LINKEMU" down "${NAME}m" >/dev/null 2>&1

# ---------------------------------------------------------- cloud server
coproc SRV { exec "$LINKEMU" exec "$NAME" cloud "$PY" -u "$work/server.py" "$cloud_ip"; }
# shellcheck disable=SC2153 # SRV_PID is set by coproc
srv_pid=$SRV_PID
SRV_OUT=${SRV[0]}
port=""
if read -r -t 15 -u "$SRV_OUT" word port && [ "$word" = ready ]; then
  pass "server listening on $cloud_ip:$port in $NAME-cloud"
else
  fail "server in $NAME-cloud did not start"
  echo "$passed passed, $failed failed"
  exit 1
fi

transfer() { # transfer BYTES MARK -> "BYTES SECONDS MBIT"
  "$LINKEMU" exec "$NAME" edge "$PY" "$work/client.py" "$cloud_ip" "$port" "$1" "$2"
}

server_line() { # the next line the server prints, within 30 s
  local l
  read -r -t 30 -u "$SRV_OUT" l && echo "$l"
}

# ------------------------------------------------------- measured rates
# Megabytes per rate: enough that tbf's 32 KB burst and TCP's ramp-up are
# noise (~1.3 s at 20 Mbit/s, ~3.4 s at 5 Mbit/s).
for spec in 20:3000000 5:2100000; do
  rate=${spec%%:*}
  bytes=${spec#*:}
  if ! "$LINKEMU" rate "$NAME" "$rate"; then
    fail "rate $NAME $rate"
    continue
  fi
  if out=$(transfer "$bytes" 0); then
    srv=$(server_line)
    mbit=$(awk '{ print $3 }' <<<"$out")
    secs=$(awk '{ print $2 }' <<<"$out")
    if [ "$srv" = "done $bytes" ] && within 20 "$mbit" "$rate"; then
      pass "rate $rate mbit: measured $mbit Mbit/s ($bytes bytes in $secs s, within ±20%)"
    else
      fail "rate $rate mbit: measured $mbit Mbit/s ($bytes bytes in $secs s; server: '$srv'), want $rate ±20%"
    fi
  else
    fail "rate $rate mbit: transfer failed: $out"
  fi
done

# ---------------------------------------------- rate change mid-transfer
# 2 MB at 2 Mbit/s would take ~8.4 s; after the first 200 KB arrive the
# uplink goes to 50 Mbit/s and the rest should take well under a second.
"$LINKEMU" rate "$NAME" 2
transfer 2000000 200000 >"$work/live.out" 2>&1 &
client_pid=$!
live_ok=1
progress=$(server_line)
if [[ $progress == progress* ]]; then
  "$LINKEMU" rate "$NAME" 50 || live_ok=0
else
  live_ok=0
fi
wait "$client_pid"
client_rc=$?
srv=$(server_line)
secs=$(awk '{ print $2 }' "$work/live.out" 2>/dev/null)
if [ "$live_ok" = 1 ] && [ "$client_rc" = 0 ] && [ "$srv" = "done 2000000" ] &&
  awk -v s="$secs" 'BEGIN { exit !(s > 0 && s < 4.2) }' && [ "$(qdisc_rate)" = 50Mbit ]; then
  pass "rate replaced 2 -> 50 mbit mid-transfer: 2 MB in $secs s (8.4 s at 2 mbit), qdisc now $(qdisc_rate)"
else
  fail "rate change mid-transfer: progress '$progress', client rc $client_rc ($(cat "$work/live.out")), server '$srv', qdisc $(qdisc_rate)"
fi

# ------------------------------------------------------------------ trace
printf '# test trace\n\n0,50\n 10 , 18.9 # comment\n20,5.85,extra\r\n30,0.13\n' >"$work/t.csv"
want=$'+0.000s uplink 50 mbit/s\n+1.000s uplink 18.9 mbit/s\n+2.000s uplink 5.85 mbit/s\n+2.500s end'
got=$("$LINKEMU" trace "$NAME" "$work/t.csv" --print-schedule --time-scale 0.1 --until 2.5 2>&1)
if [ "$got" = "$want" ]; then
  pass "trace --print-schedule parses comments, blanks, CRLF, extra columns, --time-scale, --until"
else
  fail "trace --print-schedule printed:"$'\n'"$got"$'\n'"want:"$'\n'"$want"
fi

got=$("$LINKEMU" trace "$NAME" "$here/traces/default.csv" --print-schedule 2>&1)
want=$'+0.000s uplink 50 mbit/s\n+10.000s uplink 18.9 mbit/s\n+20.000s uplink 5.85 mbit/s\n+30.000s uplink 1.1 mbit/s\n+40.000s uplink 0.13 mbit/s\n+50.000s uplink 18.9 mbit/s'
if [ "$got" = "$want" ]; then
  pass "traces/default.csv: 50 -> 18.9 -> 5.85 -> 1.1 -> 0.13 -> 18.9 at 10 s steps"
else
  fail "traces/default.csv schedule:"$'\n'"$got"
fi
for t in wifi:18.9 lte:5.85 3g:1.1; do
  got=$("$LINKEMU" trace "$NAME" "$here/traces/${t%%:*}.csv" --print-schedule 2>&1)
  if [ "$got" = "+0.000s uplink ${t#*:} mbit/s" ]; then
    pass "traces/${t%%:*}.csv: ${t#*:} mbit/s"
  else
    fail "traces/${t%%:*}.csv schedule: $got"
  fi
done

bad=0
printf '0,1\n0,2\n' >"$work/b1.csv"
printf '0,fast\n' >"$work/b2.csv"
printf '# nothing\n' >"$work/b3.csv"
printf '0,0\n' >"$work/b4.csv"
for f in b1 b2 b3 b4; do
  if "$LINKEMU" trace "$NAME" "$work/$f.csv" --print-schedule >/dev/null 2>"$work/$f.err"; then
    bad=1
    echo "  $f.csv was accepted"
  elif ! grep -q "error" "$work/$f.err"; then
    bad=1
    echo "  $f.csv rejected without a message"
  fi
done
if [ "$bad" = 0 ]; then
  pass "trace rejects repeated times, bad and zero rates, empty files"
else
  fail "trace accepted a bad file"
fi

printf '0,40\n0.4,30\n0.8,7\n' >"$work/live.csv"
t0=$EPOCHREALTIME
"$LINKEMU" trace "$NAME" "$work/live.csv" --until 1.2 2>"$work/trace.err"
trace_rc=$?
t1=$EPOCHREALTIME
took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
changes=$(grep -c 'uplink' "$work/trace.err")
if [ "$trace_rc" = 0 ] && [ "$changes" = 3 ] && [ "$(qdisc_rate)" = 7Mbit ] &&
  awk -v s="$took" 'BEGIN { exit !(s >= 1.15 && s < 4) }'; then
  pass "trace replay: 3 changes in $took s, qdisc now $(qdisc_rate)"
else
  fail "trace replay: rc $trace_rc, $changes changes, $took s, qdisc $(qdisc_rate); stderr: $(cat "$work/trace.err")"
fi

"$LINKEMU" rate "$NAME" off
if [ -z "$(qdisc_rate)" ]; then
  pass "rate off removes the tbf"
else
  fail "rate off left $(qdisc_rate)"
fi

# ------------------------------------------------------------------ cpucap
cpucap_out=$("$LINKEMU" cpucap "$NAME" 25 true 2>&1)
cpucap_rc=$?
if [ "$cpucap_rc" = 77 ]; then
  echo "skip cpucap: $cpucap_out"
else
  spins=3000000
  uncapped=()
  capped=()
  for _ in 1 2; do # interleaved: the machine's speed drifts
    uncapped+=("$("$PY" "$work/spin.py" "$spins")")
    capped+=("$("$LINKEMU" cpucap "$NAME" 25 "$PY" "$work/spin.py" "$spins")")
  done
  u=$(printf '%s\n' "${uncapped[@]}" | sort -g | head -1)
  c=$(printf '%s\n' "${capped[@]}" | sort -g | head -1)
  ratio=$(awk -v u="$u" -v c="$c" 'BEGIN { if (u > 0) printf "%.2f", c / u; else print 0 }')
  if awk -v r="$ratio" 'BEGIN { exit !(r >= 2) }'; then
    pass "cpucap 25: spin loop ${ratio}x slower (best of 2: uncapped $u s, capped $c s; runs ${uncapped[*]} / ${capped[*]})"
  else
    fail "cpucap 25: spin loop only ${ratio}x slower (uncapped ${uncapped[*]} s, capped ${capped[*]} s), want >= 2x"
  fi

  got=$("$LINKEMU" cpucap "$NAME" 25 --cpus=0 "$PY" -c \
    'import os; q = [l for l in open("/proc/self/cgroup") if ":cpu:" in l or ":cpu," in l]; print(sorted(os.sched_getaffinity(0)), q[0].strip().split(":")[2] if q else "?")' 2>&1)
  if [ "$got" = "[0] /tandem-$NAME" ]; then
    pass "cpucap --cpus=0 pins to CPU 0 inside cgroup tandem-$NAME"
  else
    fail "cpucap --cpus=0 printed '$got', want '[0] /tandem-$NAME'"
  fi

  # setcap changes a running cap: the process reads its own quota.
  got=$("$LINKEMU" cpucap "$NAME" 25 sh -c \
    '"$0" setcap "$1" 40 && cat /sys/fs/cgroup/cpu/tandem-"$1"/cpu.cfs_quota_us' "$LINKEMU" "$NAME" 2>&1)
  if [ "$got" = 40000 ]; then
    pass "setcap 40 changes a running cpucap's quota to 40000 us"
  else
    fail "setcap 40 left the quota at '$got', want 40000"
  fi
  if ! "$LINKEMU" setcap "$NAME" 40 2>/dev/null; then
    pass "setcap without a running cpucap fails"
  else
    fail "setcap succeeded with no cpucap $NAME running"
  fi

  "$LINKEMU" cpucap "$NAME" 25 sh -c 'exit 3'
  rc=$?
  if [ "$rc" = 3 ] && [ ! -e "/sys/fs/cgroup/cpu/tandem-$NAME" ]; then
    pass "cpucap passes the exit status through and removes its cgroup"
  else
    fail "cpucap: exit status $rc (want 3), cgroup left: $(ls -d /sys/fs/cgroup/cpu/tandem-"$NAME" 2>&1)"
  fi
fi

# -------------------------------------------------------------------- link
# A TCP connect to the test server (the kernel completes it from the listen
# backlog) tells whether the cloud is reachable.
reachable() {
  "$LINKEMU" exec "$NAME" edge timeout 2 bash -c "exec 3<>/dev/tcp/$cloud_ip/$port" 2>/dev/null
}
if "$LINKEMU" link "$NAME" down && ! reachable && "$LINKEMU" link "$NAME" up && reachable; then
  pass "link down cuts the cloud off and link up restores it"
else
  fail "link down/up: the cloud's reachability did not follow"
  "$LINKEMU" link "$NAME" up 2>/dev/null || true
fi

# -------------------------------------------------------------------- down
kill "$srv_pid" 2>/dev/null
wait "$srv_pid" 2>/dev/null
srv_pid=""
"$LINKEMU" down "$NAME" >/dev/null
left=$(ip netns list | awk -v p="$NAME-" 'index($1, p) == 1 { print $1 }')
if [ -z "$left" ] && "$LINKEMU" down "$NAME" >/dev/null; then
  pass "down removes the namespaces and is safe to repeat"
else
  fail "down left: $left"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
