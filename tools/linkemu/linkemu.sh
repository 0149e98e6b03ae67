#!/usr/bin/env bash
# linkemu.sh — link and device emulation for Tandem's tests and benchmarks.
#
# Two network namespaces (NAME-edge, NAME-cloud) joined by a veth pair; the
# edge's uplink (and optionally the downlink) shaped with tc tbf; rate traces
# replayed over time; a CPU quota for the edge process in a cgroup v1 cpu
# cgroup. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 (ip, tc) and the
# tbf qdisc. No netem: no added delay, jitter or loss (see README.md).
#
# Run `linkemu.sh help` for the commands.
set -euo pipefail

readonly PROG=linkemu
readonly CPU_CGROUP_ROOT=${LINKEMU_CPU_CGROUP_ROOT:-/sys/fs/cgroup/cpu}
readonly CFS_PERIOD_US=100000
readonly DEFAULT_BURST_KB=32
readonly DEFAULT_LATENCY_MS=400
readonly EXIT_SKIP=77

usage() {
  cat <<'EOF'
Usage: linkemu.sh COMMAND [ARGS...]

Namespaces and link
  up NAME [--net X] [--mtu BYTES]
                         Create netns NAME-edge and NAME-cloud joined by a veth
                         pair (NAME-e in the edge, NAME-c in the cloud) with
                         10.213.X.1/30 (edge) and 10.213.X.2/30 (cloud), lo up in
                         both. X (0-255) defaults to cksum(NAME) % 254 + 1, or
                         $LINKEMU_NET. --mtu sets the pair's MTU (576-65535;
                         default 1500): tbf's bucket must hold one packet, and
                         a full bucket lets that much through at line rate, so
                         a small MTU keeps small messages from escaping the
                         rate. Prints "edge ADDR" and "cloud ADDR".
                         Fails if either namespace already exists.
                         NAME: 1-13 characters of [A-Za-z0-9_-].
  down NAME              Remove both namespaces, the veth pair and an empty
                         leftover cpu cgroup tandem-NAME; safe on partial state.
  addr NAME edge|cloud   Print that side's IPv4 address.
  show NAME              Print addresses and qdiscs of both sides.
  exec NAME edge|cloud CMD [ARGS...]
                         Run CMD inside that namespace.
  link NAME down|up      Cut the link (set the edge's end NAME-e down: the
                         edge loses its route to the cloud and its packets are
                         dropped) or restore it (up, with the route back).
                         Connections survive a short cut as TCP retransmits.

Shaping (tc tbf on the egress of a veth end)
  rate NAME RATE_MBIT [BURST_KB] [LATENCY_MS] [--down RATE_MBIT]
                         Shape the edge's uplink (egress of NAME-e):
                           tc qdisc replace dev NAME-e root tbf rate RATEmbit
                              burst BURSTkb latency LATENCYms
                         Defaults: burst 32 kb, latency 400 ms. RATE may be
                         fractional (0.13). --down also shapes the downlink
                         (egress of NAME-c) with the same burst and latency.
                         RATE "off" removes the shaping. Works while traffic
                         flows (qdisc replace).
  trace NAME FILE [--until SECONDS] [--time-scale F] [--burst KB]
                  [--latency MS] [--print-schedule]
                         Replay a rate trace: CSV lines "seconds,rate_mbit"
                         (seconds since start at which that rate begins; "#"
                         starts a comment; blank lines ignored; times strictly
                         increasing; columns after the second are ignored). Each
                         rate is applied at its time with `rate`, and one line
                         per change goes to stderr. --time-scale multiplies all
                         times (0.1 turns 10 s steps into 1 s steps). --until
                         ends the replay at that time (steps at or after it are
                         not applied); without it the command exits right after
                         the last step. --print-schedule only parses and prints
                         the schedule (NAME need not exist).

Devices
  cpucap NAME PERCENT [--cpus=LIST] [--period-us=N] [--] CMD [ARGS...]
                         Run CMD in cgroup v1 cpu cgroup
                         /sys/fs/cgroup/cpu/tandem-NAME with cfs_quota_us =
                         PERCENT% of cfs_period_us (100000): 25 -> 25000, i.e.
                         a quarter of ONE core. --cpus=LIST also pins CMD with
                         `taskset -c LIST`. --period-us shortens the period
                         (>= 1000; the quota must stay >= 1000, so 25% needs
                         >= 4000): work shorter than a 100 ms period runs at
                         full speed until the quota is spent, so millisecond
                         inferences need a 1-2 ms period to feel the cap. Run
                         cpucap outside `exec`: `ip netns exec` remounts /sys.
                         The cgroup is removed afterwards; exits with CMD's
                         status. Exit 77 without cgroup v1 cpu.
  setcap NAME PERCENT    Change the quota of a running cpucap NAME (same
                         period): slow a process down or let it run again
                         without restarting it.

Environment
  check                  Exit 0 if namespaces, veth and tbf work here (creates
                         and deletes a throwaway pair), 77 otherwise, saying why.
  help                   This text.

Example
  linkemu.sh up lab                      # edge 10.213.X.1, cloud 10.213.X.2
  linkemu.sh rate lab 5.85               # LTE uplink
  linkemu.sh exec lab cloud tandem-cloud --listen 0.0.0.0:8500 ... &
  linkemu.sh cpucap lab 25 linkemu.sh exec lab edge tandem-edge \
      --cloud "$(linkemu.sh addr lab cloud):8500" ...
  linkemu.sh trace lab tools/linkemu/traces/default.csv --until 60
  linkemu.sh down lab
EOF
}

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

skip() {
  echo "$PROG: cannot run here: $*" >&2
  exit "$EXIT_SKIP"
}

warn() {
  echo "$PROG: warning: $*" >&2
}

need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found on PATH (install iproute2 / util-linux)"
  done
}

valid_name() {
  local name=$1
  [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{0,12}$ ]] ||
    die "bad NAME '$name': 1-13 characters of [A-Za-z0-9_-], not starting with '-' (interface names are limited to 15)"
}

# is_number STR: a non-negative decimal (12, 0.13, .5).
is_number() {
  [[ $1 =~ ^([0-9]+(\.[0-9]*)?|\.[0-9]+)$ ]]
}

is_positive() {
  is_number "$1" && awk -v x="$1" 'BEGIN { exit !(x > 0) }'
}

ns_exists() {
  # No `| grep -q` under pipefail: an early grep exit can SIGPIPE the writer.
  local list
  list=$(ip netns list 2>/dev/null | awk '{ print $1 }')
  grep -qxF -- "$1" <<<"$list"
}

root_link_exists() {
  ip link show dev "$1" >/dev/null 2>&1
}

ns_of() { # ns_of NAME edge|cloud
  case $2 in
    edge) echo "$1-edge" ;;
    cloud) echo "$1-cloud" ;;
    *) die "side must be 'edge' or 'cloud', got '$2'" ;;
  esac
}

dev_of() { # dev_of NAME edge|cloud
  case $2 in
    edge) echo "$1-e" ;;
    cloud) echo "$1-c" ;;
    *) die "side must be 'edge' or 'cloud', got '$2'" ;;
  esac
}

require_up() {
  local name=$1 side
  for side in edge cloud; do
    ns_exists "$(ns_of "$name" "$side")" ||
      die "namespace $(ns_of "$name" "$side") does not exist (run: linkemu.sh up $name)"
  done
}

default_net() {
  local sum
  sum=$(printf '%s' "$1" | cksum | awk '{ print $1 }')
  echo $((sum % 254 + 1))
}

now_us() {
  local t=$EPOCHREALTIME
  t=${t//[!0-9]/}
  echo $((10#$t))
}

# ---------------------------------------------------------------- up / down

do_down() { # do_down NAME [quiet]
  local name=$1 quiet=${2:-} removed=0 ns dev cg
  for ns in "$name-edge" "$name-cloud"; do
    if ns_exists "$ns"; then
      ip netns del "$ns" || warn "could not delete namespace $ns"
      removed=1
      [ -n "$quiet" ] || echo "removed namespace $ns"
    fi
  done
  # A partial `up` can leave a veth end in the root namespace.
  for dev in "$name-e" "$name-c"; do
    if root_link_exists "$dev"; then
      ip link del dev "$dev" 2>/dev/null || true
      removed=1
      [ -n "$quiet" ] || echo "removed link $dev"
    fi
  done
  cg=$CPU_CGROUP_ROOT/tandem-$name
  if [ -d "$cg" ]; then
    if rmdir "$cg" 2>/dev/null; then
      removed=1
      [ -n "$quiet" ] || echo "removed cgroup $cg"
    else
      warn "cgroup $cg still has processes; left in place"
    fi
  fi
  if [ "$removed" = 0 ] && [ -z "$quiet" ]; then
    echo "nothing to remove for $name"
  fi
  return 0
}

cmd_down() {
  [ $# -eq 1 ] || die "usage: linkemu.sh down NAME"
  valid_name "$1"
  need_tools ip
  do_down "$1"
}

UP_NAME=""
up_rollback() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$UP_NAME" ]; then
    echo "$PROG: error: up $UP_NAME failed; rolling back" >&2
    do_down "$UP_NAME" quiet
  fi
}

cmd_up() {
  local name="" net=${LINKEMU_NET:-} mtu=1500
  while [ $# -gt 0 ]; do
    case $1 in
      --net) [ $# -ge 2 ] || die "--net needs a value"; net=$2; shift 2 ;;
      --net=*) net=${1#--net=}; shift ;;
      --mtu) [ $# -ge 2 ] || die "--mtu needs a value"; mtu=$2; shift 2 ;;
      --mtu=*) mtu=${1#--mtu=}; shift ;;
      -*) die "unknown option '$1' for up" ;;
      *) [ -z "$name" ] || die "usage: linkemu.sh up NAME [--net X] [--mtu BYTES]"; name=$1; shift ;;
    esac
  done
  [ -n "$name" ] || die "usage: linkemu.sh up NAME [--net X] [--mtu BYTES]"
  if ! [[ $mtu =~ ^[0-9]{3,5}$ ]] || [ "$mtu" -lt 576 ] || [ "$mtu" -gt 65535 ]; then
    die "--mtu must be 576-65535, got '$mtu'"
  fi
  valid_name "$name"
  need_tools ip
  if [ -z "$net" ]; then
    net=$(default_net "$name")
  fi
  if ! [[ $net =~ ^[0-9]{1,3}$ ]] || [ "$net" -gt 255 ]; then
    die "--net must be 0-255, got '$net'"
  fi
  local ns_e=$name-edge ns_c=$name-cloud dev_e=$name-e dev_c=$name-c
  local ip_e=10.213.$net.1 ip_c=10.213.$net.2
  local ns
  for ns in "$ns_e" "$ns_c"; do
    ns_exists "$ns" && die "namespace $ns already exists (run: linkemu.sh down $name)"
  done
  for dev in "$dev_e" "$dev_c"; do
    root_link_exists "$dev" && die "interface $dev already exists in the root namespace (run: linkemu.sh down $name)"
  done

  # Roll back whatever was created if any step fails.
  UP_NAME=$name
  trap up_rollback EXIT
  ip netns add "$ns_e"
  ip netns add "$ns_c"
  ip link add "$dev_e" netns "$ns_e" type veth peer name "$dev_c" netns "$ns_c"
  ip -n "$ns_e" addr add "$ip_e/30" dev "$dev_e"
  ip -n "$ns_c" addr add "$ip_c/30" dev "$dev_c"
  ip -n "$ns_e" link set lo up
  ip -n "$ns_c" link set lo up
  ip -n "$ns_e" link set "$dev_e" mtu "$mtu" up
  ip -n "$ns_c" link set "$dev_c" mtu "$mtu" up
  trap - EXIT
  echo "edge $ip_e"
  echo "cloud $ip_c"
}

cmd_addr() {
  [ $# -eq 2 ] || die "usage: linkemu.sh addr NAME edge|cloud"
  valid_name "$1"
  need_tools ip
  require_up "$1"
  local ns dev a
  ns=$(ns_of "$1" "$2")
  dev=$(dev_of "$1" "$2")
  a=$(ip -n "$ns" -4 -o addr show dev "$dev" | awk '{ split($4, p, "/"); print p[1]; exit }')
  [ -n "$a" ] || die "no IPv4 address on $dev in $ns"
  echo "$a"
}

cmd_show() {
  [ $# -eq 1 ] || die "usage: linkemu.sh show NAME"
  valid_name "$1"
  need_tools ip tc
  require_up "$1"
  local side ns dev
  for side in edge cloud; do
    ns=$(ns_of "$1" "$side")
    dev=$(dev_of "$1" "$side")
    echo "$side: netns $ns dev $dev addr $(cmd_addr "$1" "$side")"
    tc -n "$ns" qdisc show dev "$dev" | sed 's/^/  /'
  done
}

cmd_exec() {
  [ $# -ge 3 ] || die "usage: linkemu.sh exec NAME edge|cloud CMD [ARGS...]"
  local name=$1 side=$2 ns
  shift 2
  valid_name "$name"
  need_tools ip
  ns=$(ns_of "$name" "$side")
  ns_exists "$ns" || die "namespace $ns does not exist (run: linkemu.sh up $name)"
  exec ip netns exec "$ns" "$@"
}

cmd_link() {
  [ $# -eq 2 ] || die "usage: linkemu.sh link NAME down|up"
  local name=$1 state=$2 ns dev
  valid_name "$name"
  case $state in
    down | up) ;;
    *) die "link state must be 'down' or 'up', got '$state'" ;;
  esac
  need_tools ip
  require_up "$name"
  ns=$(ns_of "$name" edge)
  dev=$(dev_of "$name" edge)
  ip -n "$ns" link set dev "$dev" "$state" || die "could not set $dev $state in $ns"
  if [ "$state" = up ]; then
    # The address and its subnet route come back with the link; wait until
    # the kernel has the route, so that "up" means usable.
    local i
    for i in $(seq 50); do
      ip -n "$ns" route get "$(cmd_addr "$name" cloud)" >/dev/null 2>&1 && return 0
      sleep 0.02
    done
    die "no route to the cloud after bringing $dev up"
  fi
}

# -------------------------------------------------------------------- rate

# shape NAME SIDE RATE BURST LATENCY
shape() {
  local name=$1 side=$2 rate=$3 burst=$4 latency=$5 ns dev
  ns=$(ns_of "$name" "$side")
  dev=$(dev_of "$name" "$side")
  if [ "$rate" = off ]; then
    # Deleting a missing root qdisc fails; "off" is idempotent.
    local qdiscs
    qdiscs=$(tc -n "$ns" qdisc show dev "$dev")
    if grep -q '^qdisc tbf ' <<<"$qdiscs"; then
      tc -n "$ns" qdisc del dev "$dev" root
    fi
    return 0
  fi
  tc -n "$ns" qdisc replace dev "$dev" root tbf rate "${rate}mbit" burst "${burst}kb" latency "${latency}ms" ||
    die "tc could not set tbf on $dev in $ns (is sch_tbf available?)"
}

check_rate() {
  [ "$1" = off ] || is_positive "$1" || die "bad rate '$1': a positive number of Mbit/s (e.g. 5.85) or 'off'"
}

cmd_rate() {
  local pos=() down=""
  while [ $# -gt 0 ]; do
    case $1 in
      --down) [ $# -ge 2 ] || die "--down needs a rate"; down=$2; shift 2 ;;
      --down=*) down=${1#--down=}; shift ;;
      --) shift; pos+=("$@"); break ;;
      -*) die "unknown option '$1' for rate" ;;
      *) pos+=("$1"); shift ;;
    esac
  done
  if [ ${#pos[@]} -lt 2 ] || [ ${#pos[@]} -gt 4 ]; then
    die "usage: linkemu.sh rate NAME RATE_MBIT [BURST_KB] [LATENCY_MS] [--down RATE_MBIT]"
  fi
  local name=${pos[0]} rate=${pos[1]} burst=${pos[2]:-$DEFAULT_BURST_KB} latency=${pos[3]:-$DEFAULT_LATENCY_MS}
  valid_name "$name"
  check_rate "$rate"
  [ -z "$down" ] || check_rate "$down"
  is_positive "$burst" || die "bad burst '$burst': a positive number of kilobytes"
  is_positive "$latency" || die "bad latency '$latency': a positive number of milliseconds"
  need_tools ip tc
  require_up "$name"
  shape "$name" edge "$rate" "$burst" "$latency"
  if [ -n "$down" ]; then
    shape "$name" cloud "$down" "$burst" "$latency"
  fi
}

# ------------------------------------------------------------------- trace

# parse_trace FILE SCALE: fills TRACE_T (scaled seconds, "%.3f"), TRACE_US
# (scaled microseconds) and TRACE_R (rates as written).
TRACE_T=()
TRACE_US=()
TRACE_R=()
parse_trace() {
  local file=$1 scale=$2 line lineno=0 t r rest us prev_us=-1 fields
  [ -f "$file" ] || die "trace file '$file' not found"
  [ -r "$file" ] || die "trace file '$file' is not readable"
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line=${line%$'\r'}
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [ -n "$line" ] || continue
    IFS=, read -r t r rest <<<"$line"
    fields="$file:$lineno"
    is_number "$t" || die "$fields: bad time '$t' (want seconds,rate_mbit)"
    [ -n "${r:-}" ] || die "$fields: missing rate (want seconds,rate_mbit)"
    is_positive "$r" || die "$fields: bad rate '$r' (a positive number of Mbit/s)"
    us=$(awk -v t="$t" -v s="$scale" 'BEGIN { printf "%.0f", t * s * 1e6 }')
    [ "$us" -gt "$prev_us" ] || die "$fields: time $t is not after the previous step's"
    prev_us=$us
    TRACE_US+=("$us")
    TRACE_T+=("$(awk -v u="$us" 'BEGIN { printf "%.3f", u / 1e6 }')")
    TRACE_R+=("$r")
  done <"$file"
  [ ${#TRACE_R[@]} -gt 0 ] || die "$file: no steps (want lines seconds,rate_mbit)"
}

sleep_until_us() { # sleep_until_us ABS_US
  local delta=$(($1 - $(now_us)))
  if [ "$delta" -gt 0 ]; then
    sleep "$(printf '%d.%06d' $((delta / 1000000)) $((delta % 1000000)))"
  fi
}

cmd_trace() {
  local pos=() until="" scale=1 burst=$DEFAULT_BURST_KB latency=$DEFAULT_LATENCY_MS dry=0
  while [ $# -gt 0 ]; do
    case $1 in
      --until) [ $# -ge 2 ] || die "--until needs seconds"; until=$2; shift 2 ;;
      --until=*) until=${1#--until=}; shift ;;
      --time-scale) [ $# -ge 2 ] || die "--time-scale needs a factor"; scale=$2; shift 2 ;;
      --time-scale=*) scale=${1#--time-scale=}; shift ;;
      --burst) [ $# -ge 2 ] || die "--burst needs kilobytes"; burst=$2; shift 2 ;;
      --burst=*) burst=${1#--burst=}; shift ;;
      --latency) [ $# -ge 2 ] || die "--latency needs milliseconds"; latency=$2; shift 2 ;;
      --latency=*) latency=${1#--latency=}; shift ;;
      --print-schedule) dry=1; shift ;;
      --) shift; pos+=("$@"); break ;;
      -*) die "unknown option '$1' for trace" ;;
      *) pos+=("$1"); shift ;;
    esac
  done
  [ ${#pos[@]} -eq 2 ] ||
    die "usage: linkemu.sh trace NAME FILE [--until SECONDS] [--time-scale F] [--burst KB] [--latency MS] [--print-schedule]"
  local name=${pos[0]} file=${pos[1]}
  valid_name "$name"
  is_positive "$scale" || die "bad --time-scale '$scale': a positive number"
  is_positive "$burst" || die "bad --burst '$burst'"
  is_positive "$latency" || die "bad --latency '$latency'"
  local until_us=""
  if [ -n "$until" ]; then
    is_number "$until" || die "bad --until '$until': seconds"
    until_us=$(awk -v t="$until" 'BEGIN { printf "%.0f", t * 1e6 }')
  fi
  parse_trace "$file" "$scale"
  local n=${#TRACE_R[@]} i
  if [ "$dry" = 1 ]; then
    for ((i = 0; i < n; i++)); do
      if [ -n "$until_us" ] && [ "${TRACE_US[i]}" -ge "$until_us" ]; then
        break
      fi
      echo "+${TRACE_T[i]}s uplink ${TRACE_R[i]} mbit/s"
    done
    if [ -n "$until_us" ]; then
      echo "+$(awk -v u="$until_us" 'BEGIN { printf "%.3f", u / 1e6 }')s end"
    fi
    return 0
  fi
  need_tools ip tc
  require_up "$name"
  local start elapsed
  start=$(now_us)
  for ((i = 0; i < n; i++)); do
    if [ -n "$until_us" ] && [ "${TRACE_US[i]}" -ge "$until_us" ]; then
      break
    fi
    sleep_until_us $((start + TRACE_US[i]))
    shape "$name" edge "${TRACE_R[i]}" "$burst" "$latency"
    elapsed=$(($(now_us) - start))
    printf '%s +%d.%03ds %s uplink %s mbit/s\n' "$(date +%FT%T.%3N%:z)" \
      $((elapsed / 1000000)) $((elapsed % 1000000 / 1000)) "$name" "${TRACE_R[i]}" >&2
  done
  if [ -n "$until_us" ]; then
    sleep_until_us $((start + until_us))
    elapsed=$(($(now_us) - start))
    printf '%s +%d.%03ds %s trace end\n' "$(date +%FT%T.%3N%:z)" \
      $((elapsed / 1000000)) $((elapsed % 1000000 / 1000)) "$name" >&2
  fi
}

# ------------------------------------------------------------------ cpucap

# own_cpu_cgroup: this process's cgroup in the v1 cpu hierarchy ("/" if unknown).
own_cpu_cgroup() {
  awk -F: '{ n = split($2, c, ","); for (i = 1; i <= n; i++) if (c[i] == "cpu") { print $3; exit } }' \
    /proc/self/cgroup 2>/dev/null || true
}

CPUCAP_CG=""
cpucap_cleanup() {
  local cg=$CPUCAP_CG pid parent moved=0
  [ -n "$cg" ] && [ -d "$cg" ] || return 0
  parent=$CPU_CGROUP_ROOT$(own_cpu_cgroup)
  [ -w "$parent/cgroup.procs" ] || parent=$CPU_CGROUP_ROOT
  # Processes CMD left behind (daemons) keep running, uncapped.
  while read -r pid; do
    [ -n "$pid" ] || continue
    echo "$pid" >"$parent/cgroup.procs" 2>/dev/null && moved=$((moved + 1))
  done <"$cg/cgroup.procs"
  [ "$moved" = 0 ] || warn "moved $moved leftover process(es) out of $cg"
  rmdir "$cg" 2>/dev/null || warn "could not remove $cg"
  CPUCAP_CG=""
}

cmd_cpucap() {
  local pos=() cpus="" period=$CFS_PERIOD_US
  while [ $# -gt 0 ] && [ ${#pos[@]} -lt 2 ]; do
    case $1 in
      --period-us=*) period=${1#--period-us=}; shift ;;
      --cpus=*) cpus=${1#--cpus=}; shift ;;
      --cpus) [ $# -ge 2 ] || die "--cpus needs a list"; cpus=$2; shift 2 ;;
      -*) die "unknown option '$1' for cpucap" ;;
      *) pos+=("$1"); shift ;;
    esac
  done
  while [ $# -gt 0 ]; do
    case $1 in
      --period-us=*) period=${1#--period-us=}; shift ;;
      --cpus=*) cpus=${1#--cpus=}; shift ;;
      --cpus) [ $# -ge 2 ] || die "--cpus needs a list"; cpus=$2; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  if [ ${#pos[@]} -ne 2 ] || [ $# -lt 1 ]; then
    die "usage: linkemu.sh cpucap NAME PERCENT [--cpus=LIST] [--period-us=N] [--] CMD [ARGS...]"
  fi
  local name=${pos[0]} percent=${pos[1]}
  valid_name "$name"
  if ! [[ $period =~ ^[0-9]{4,7}$ ]] || [ "$period" -lt 1000 ] || [ "$period" -gt 1000000 ]; then
    die "bad --period-us '$period': 1000 to 1000000 microseconds"
  fi
  if [ $((percent * period / 100)) -lt 1000 ]; then
    die "quota $((percent * period / 100)) us is under the kernel's 1000 us minimum: raise --period-us"
  fi
  if ! [[ $percent =~ ^[0-9]{1,6}$ ]] || [ "$percent" -lt 1 ] || [ "$percent" -gt 100000 ]; then
    die "bad PERCENT '$percent': an integer from 1 to 100000 (100 = one full core)"
  fi
  if [ -n "$cpus" ]; then
    [[ $cpus =~ ^[0-9,-]+$ ]] || die "bad --cpus '$cpus': a CPU list such as 0 or 0-1,3"
    need_tools taskset
  fi
  [ -f "$CPU_CGROUP_ROOT/cpu.cfs_quota_us" ] ||
    skip "no cgroup v1 cpu controller at $CPU_CGROUP_ROOT (cpu.cfs_quota_us missing; cgroup v2-only host?)"
  [ -w "$CPU_CGROUP_ROOT" ] || skip "$CPU_CGROUP_ROOT is not writable (not root, or mounted read-only)"

  local cg=$CPU_CGROUP_ROOT/tandem-$name
  if [ -d "$cg" ]; then
    [ -z "$(cat "$cg/cgroup.procs")" ] || die "cgroup $cg is in use by another cpucap (processes: $(tr '\n' ' ' <"$cg/cgroup.procs"))"
    rmdir "$cg" || die "could not remove stale cgroup $cg"
  fi
  mkdir "$cg" 2>/dev/null || skip "could not create cgroup $cg"
  CPUCAP_CG=$cg
  trap cpucap_cleanup EXIT
  echo "$period" >"$cg/cpu.cfs_period_us" || die "could not set $cg/cpu.cfs_period_us"
  echo $((percent * period / 100)) >"$cg/cpu.cfs_quota_us" ||
    die "could not set $cg/cpu.cfs_quota_us to $((percent * period / 100))"

  local wrap=()
  [ -z "$cpus" ] || wrap=(taskset -c "$cpus")
  # The child joins the cgroup itself, then becomes CMD: CMD and everything it
  # forks are capped from their first instruction.
  local rc=0
  set +e
  sh -c 'echo $$ >"$0/cgroup.procs" || exit 125; exec "$@"' "$cg" "${wrap[@]}" "$@"
  rc=$?
  set -e
  cpucap_cleanup
  trap - EXIT
  return "$rc"
}

cmd_setcap() {
  [ $# -eq 2 ] || die "usage: linkemu.sh setcap NAME PERCENT"
  local name=$1 percent=$2 cg period
  valid_name "$name"
  if ! [[ $percent =~ ^[0-9]{1,6}$ ]] || [ "$percent" -lt 1 ] || [ "$percent" -gt 100000 ]; then
    die "bad PERCENT '$percent': an integer from 1 to 100000 (100 = one full core)"
  fi
  cg=$CPU_CGROUP_ROOT/tandem-$name
  [ -d "$cg" ] || die "no cpucap named $name is running ($cg missing)"
  period=$(cat "$cg/cpu.cfs_period_us")
  [ $((percent * period / 100)) -ge 1000 ] ||
    die "quota $((percent * period / 100)) us is under the kernel's 1000 us minimum at period $period us"
  echo $((percent * period / 100)) >"$cg/cpu.cfs_quota_us" ||
    die "could not set $cg/cpu.cfs_quota_us"
}

# ------------------------------------------------------------------- check

CHECK_TAG=""
check_cleanup() {
  [ -n "$CHECK_TAG" ] || return 0
  ip netns del "$CHECK_TAG-a" 2>/dev/null || true
  ip netns del "$CHECK_TAG-b" 2>/dev/null || true
  ip link del dev "$CHECK_TAG-x" 2>/dev/null || true
}

cmd_check() {
  [ $# -eq 0 ] || die "usage: linkemu.sh check"
  local t
  for t in ip tc; do
    command -v "$t" >/dev/null 2>&1 || skip "'$t' not found (install iproute2)"
  done
  [ "$(id -u)" = 0 ] || skip "not root: network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN"
  CHECK_TAG=lkchk$$
  trap check_cleanup EXIT
  local err
  err=$(ip netns add "$CHECK_TAG-a" 2>&1) || skip "ip netns add failed: $err"
  err=$(ip netns add "$CHECK_TAG-b" 2>&1) || skip "ip netns add failed: $err"
  err=$(ip link add "$CHECK_TAG-x" netns "$CHECK_TAG-a" type veth peer name "$CHECK_TAG-y" netns "$CHECK_TAG-b" 2>&1) ||
    skip "cannot create a veth pair between namespaces: $err"
  err=$(ip -n "$CHECK_TAG-a" link set "$CHECK_TAG-x" up 2>&1) || skip "cannot bring a veth up: $err"
  err=$(tc -n "$CHECK_TAG-a" qdisc replace dev "$CHECK_TAG-x" root tbf rate 1mbit burst 32kb latency 400ms 2>&1) ||
    skip "tc tbf unavailable (sch_tbf missing?): $err"
  check_cleanup
  CHECK_TAG=""
  trap - EXIT
  echo "ok: network namespaces, veth and tbf work here"
}

# -------------------------------------------------------------------- main

main() {
  [ $# -ge 1 ] || { usage >&2; exit 2; }
  local cmd=$1
  shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    addr) cmd_addr "$@" ;;
    show) cmd_show "$@" ;;
    exec) cmd_exec "$@" ;;
    link) cmd_link "$@" ;;
    rate) cmd_rate "$@" ;;
    trace) cmd_trace "$@" ;;
    cpucap) cmd_cpucap "$@" ;;
    setcap) cmd_setcap "$@" ;;
    check) cmd_check "$@" ;;
    help | -h | --help) usage ;;
    *) echo "$PROG: error: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
