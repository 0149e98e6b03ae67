#!/usr/bin/env bash
# Proves the runtime image of deploy/docker/Dockerfile.cloud without a
# container engine:
#
#   tests/deploy/runtime_image_test.sh BUILD_DIR SOURCE_DIR
#
# 1. reads the runtime stage's `apt-get install` package list, its USER and
#    its ENV from the Dockerfile (so the list lives in one place);
# 2. builds a Debian 12 root with exactly those packages
#    (`debootstrap --variant=minbase --include=...`) from the Debian mirror
#    this machine's APT uses, cached in BUILD_DIR/runtime_root and rebuilt
#    only when the package list changes;
# 3. copies the built BUILD_DIR/cloud/tandem-cloud and
#    BUILD_DIR/model_repository in (as /usr/local/bin and /models), and fails
#    if `ldd` in the root finds a library missing;
# 4. starts the server in a read-only view of that root (tmpfs /tmp, like the
#    Deployment's readOnlyRootFilesystem + emptyDir) as the image's non-root
#    USER, waits for gRPC health `readiness` and `liveness` to be SERVING,
#    scrapes /metrics (when the server has --metrics_listen) for the counters
#    the HPA needs, and checks that SIGTERM makes it exit 0.
#
# Needs root (debootstrap, chroot, mount), debootstrap, /usr/bin/python3 with
# python3-grpcio, the mirror, and the default build's tandem-cloud and
# model_repository targets. Exits 77 (ctest's skip code), saying why on
# stderr, when it cannot run; 1 when a check fails; 0 when all passed.
# TANDEM_DEBIAN_MIRROR=URI overrides the mirror read from APT's sources.
set -euo pipefail

readonly SUITE=bookworm  # Debian 12, the Dockerfile's runtime base.
readonly READY_TIMEOUT_S=300  # As the Deployment's startupProbe (60 x 5 s).
readonly STOP_TIMEOUT_S=60

BUILD_DIR=""
SOURCE_DIR=""
DOCKERFILE=""
ROOT=""      # The cached Debian root.
RUN_DIR=""   # Read-only bind mount of ROOT the server runs in.
LOG=""
SERVER_PID=""

say() { echo "runtime_image_test: $*"; }
skip() { echo "runtime_image_test: SKIP: $*" >&2; exit 77; }
fail() { echo "runtime_image_test: FAIL: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Reading the Dockerfile.

# The runtime (last) stage, one logical line per instruction: comment lines
# dropped and backslash continuations joined, as Docker does.
runtime_stage() {
  awk '
    /^[[:space:]]*#/ { next }
    {
      line = $0
      if (sub(/\\[[:space:]]*$/, "", line)) { buf = buf line " "; next }
      print buf line; buf = ""
    }' "$DOCKERFILE" |
    awk '/^FROM[[:space:]]/ { stage = "" } { stage = stage $0 "\n" } END { printf "%s", stage }'
}

# The packages of the runtime stage's `apt-get install`, one per line.
runtime_packages() {
  local installs
  installs=$(runtime_stage | grep -E '^RUN .*apt-get( [^&]*)? install' || true)
  [ "$(printf '%s' "$installs" | grep -c .)" -eq 1 ] ||
    fail "expected one RUN with apt-get install in the runtime stage of $DOCKERFILE"
  printf '%s\n' "$installs" | sed -E 's/.*apt-get( [^&]*)? install//; s/&&.*//' |
    tr -s ' \t' '\n' | grep -v -e '^-' -e '^$' || true
}

# The runtime stage's USER (numeric UID[:GID]).
runtime_user() {
  runtime_stage | awk '$1 == "USER" { user = $2 } END { print user }'
}

# The runtime stage's ENV KEY=VALUE pairs, one per line (the simple form).
runtime_env() {
  runtime_stage | awk '$1 == "ENV" { for (i = 2; i <= NF; i++) if ($i ~ /=/) print $i }'
}

# ---------------------------------------------------------------------------
# Prerequisites and the mirror.

check_prerequisites() {
  [ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, mount)"
  command -v debootstrap >/dev/null || skip "debootstrap is not installed"
  command -v chroot >/dev/null || skip "chroot is not installed"
  /usr/bin/python3 -c 'import grpc' 2>/dev/null ||
    skip "/usr/bin/python3 has no grpc module (python3-grpcio)"
  local probe
  probe=$(mktemp -d)
  if ! mount -t tmpfs -o size=1m tmpfs "$probe" 2>/dev/null; then
    rmdir "$probe"
    skip "cannot mount (no CAP_SYS_ADMIN here?)"
  fi
  umount "$probe"
  rmdir "$probe"
  [ -x "$BUILD_DIR/cloud/tandem-cloud" ] ||
    fail "$BUILD_DIR/cloud/tandem-cloud is missing: build the default target first"
  [ -d "$BUILD_DIR/model_repository" ] ||
    fail "$BUILD_DIR/model_repository is missing: build the default target first"
}

# Prints "URI KEYRING" (KEYRING may be empty) of the first enabled `deb`
# source for $SUITE in APT's configuration: one-line .list files and deb822
# .sources files.
apt_mirror() {
  local files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  local f
  for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
  if [ ${#files[@]} -gt 0 ]; then
    awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }  # [ options ]
        if ($(i + 1) == suite) { print $i; exit }
      }' "${files[@]}"
  fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = uris = suites = keyring = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/) continue
          split($i, kv, ":[[:space:]]*")
          key = tolower(kv[1]); value = substr($i, length(kv[1]) + 2)
          gsub(/^[[:space:]]+|[[:space:]]+$/, "", value)
          if (key == "types") types = value
          else if (key == "uris") uris = value
          else if (key == "suites") suites = value
          else if (key == "signed-by") keyring = value
          else if (key == "enabled") enabled = tolower(value)
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        if ((" " suites " ") !~ (" " suite " ")) next
        split(uris, uri, /[[:space:]]+/)
        if (keyring !~ /^\//) keyring = ""  # An inline key, not a file.
        print uri[1], keyring
        exit
      }' "$f"
  done
}

url_reachable() {
  /usr/bin/python3 -c '
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=20).read(1)' "$1" 2>/dev/null
}

# Sets MIRROR and KEYRING.
check_mirror() {
  local line
  if [ -n "${TANDEM_DEBIAN_MIRROR:-}" ]; then
    line="$TANDEM_DEBIAN_MIRROR"
  else
    line=$(apt_mirror)
    line=${line%%$'\n'*}  # The first source found.
  fi
  [ -n "$line" ] || skip "no APT source for $SUITE in /etc/apt (set TANDEM_DEBIAN_MIRROR)"
  MIRROR=${line%% *}
  KEYRING=""
  if [ "$line" != "$MIRROR" ]; then KEYRING=${line#* }; fi
  url_reachable "$MIRROR/dists/$SUITE/Release" ||
    skip "mirror $MIRROR unreachable (no $SUITE Release)"
  say "mirror $MIRROR${KEYRING:+ (keyring $KEYRING)}"
}

# ---------------------------------------------------------------------------
# The root.

# Unmounts everything mounted at or below $1, deepest first.
unmount_below() {
  local dir mounts m
  dir=$(realpath -m "$1")
  mounts=$(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' \
             /proc/self/mountinfo | sort -r)
  for m in $mounts; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}

build_root() {
  local packages stamp
  packages=$(runtime_packages | sort -u)
  [ -n "$packages" ] || fail "no packages parsed from $DOCKERFILE"
  local bad
  bad=$(printf '%s\n' "$packages" | grep -Ev '^[a-z0-9][a-z0-9.+-]+$' || true)
  [ -z "$bad" ] || fail "not package names: $bad"
  say "runtime packages: $(printf '%s' "$packages" | tr '\n' ' ')"
  stamp=$(printf 'suite=%s variant=minbase\n%s\n' "$SUITE" "$packages" | sha256sum | cut -d' ' -f1)
  if [ -f "$ROOT/.tandem-runtime-stamp" ] &&
     [ "$(cat "$ROOT/.tandem-runtime-stamp")" = "$stamp" ]; then
    say "reusing $ROOT (package list unchanged)"
    return
  fi

  say "debootstrap $SUITE into $ROOT (several minutes; log $ROOT.debootstrap.log)"
  local tmp="$ROOT.tmp" start=$SECONDS dir
  for dir in "$tmp" "$ROOT"; do
    unmount_below "$dir"  # Left by an interrupted run: never rm across a mount.
    rm -rf --one-file-system "$dir"
  done
  local args=(--variant=minbase "--include=$(printf '%s' "$packages" | paste -sd,)")
  [ -n "$KEYRING" ] && args+=("--keyring=$KEYRING")
  if ! debootstrap "${args[@]}" "$SUITE" "$tmp" "$MIRROR" >"$ROOT.debootstrap.log" 2>&1; then
    unmount_below "$tmp"
    tail -n 20 "$ROOT.debootstrap.log" >&2
    fail "debootstrap failed (a package name wrong or not in $SUITE?)"
  fi
  unmount_below "$tmp"
  rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/var/lib/apt/lists/"*_Packages
  echo "$stamp" >"$tmp/.tandem-runtime-stamp"
  mv "$tmp" "$ROOT"
  say "root built in $((SECONDS - start)) s ($(du -sh --one-file-system "$ROOT" | cut -f1))"
}

install_server() {
  install -m 0755 "$BUILD_DIR/cloud/tandem-cloud" "$ROOT/usr/local/bin/tandem-cloud"
  rm -rf --one-file-system "$ROOT/models"
  cp -r -H "$BUILD_DIR/model_repository" "$ROOT/models"  # -H: it may be a symlink.
  find "$ROOT/models" -name training_report.json -delete  # As the Dockerfile.
  chmod -R a+rX "$ROOT/models"
}

check_libraries() {
  local out
  out=$(chroot "$ROOT" /usr/bin/ldd /usr/local/bin/tandem-cloud) ||
    fail "ldd in the root failed: $out"
  if grep 'not found' <<<"$out" >&2; then
    fail "shared libraries missing from the runtime package list (above)"
  fi
  say "ldd: all $(grep -c '=>' <<<"$out") libraries found in the root"
}

# ---------------------------------------------------------------------------
# The server.

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$RUN_DIR" ]; then
    unmount_below "$RUN_DIR"
    rmdir "$RUN_DIR" 2>/dev/null || true
  fi
}

# RUN_DIR: the root read-only, with a fresh /tmp and /proc (LibTorch and the
# process metrics read /proc/self and /proc/cpuinfo), as in the pod.
mount_run_dir() {
  RUN_DIR="$BUILD_DIR/runtime_run"
  unmount_below "$RUN_DIR"
  mkdir -p "$RUN_DIR"
  mount --bind "$ROOT" "$RUN_DIR"
  mount -o remount,bind,ro "$RUN_DIR"
  mount -t tmpfs -o size=256m,mode=1777 tmpfs "$RUN_DIR/tmp"
  mount -t proc proc "$RUN_DIR/proc"
  [ -c "$RUN_DIR/dev/null" ] || fail "no /dev/null in the root"
}

free_port() {
  /usr/bin/python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Prints the grpc.health.v1 status of service $2 on 127.0.0.1:$1 (raw
# protobuf: HealthCheckRequest{service = 1}, HealthCheckResponse{status = 1}),
# or the RPC error.
health() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import sys, grpc
port, service = sys.argv[1], sys.argv[2].encode()
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    check = channel.unary_unary("/grpc.health.v1.Health/Check")  # bytes in, bytes out
    try:
        response = check(b"\x0a" + bytes([len(service)]) + service, timeout=5)
    except grpc.RpcError as e:
        print(e.code().name)
        sys.exit(0)
status = response[1] if len(response) >= 2 and response[0] == 0x08 else 0
print({0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}.get(status, status))
EOF
}

server_failed() {
  tail -n 30 "$LOG" >&2
  fail "$*"
}

start_server() {
  local user env_vars flags=() help metrics_port=""
  user=$(runtime_user)
  [[ "$user" =~ ^[0-9]+(:[0-9]+)?$ ]] || fail "the runtime stage's USER is not numeric: '$user'"
  [[ "$user" == *:* ]] || user="$user:$user"
  mapfile -t env_vars < <(runtime_env)
  flags=(--listen=127.0.0.1:0 --port_file=/tmp/port --model_repository=/models)
  help=$("$BUILD_DIR/cloud/tandem-cloud" --helpfull 2>&1 || true)
  if grep -q -- '-metrics_listen' <<<"$help"; then
    # The port must be known to scrape it: chosen here, unless the server can
    # report the one it bound.
    if grep -q -- '-metrics_port_file' <<<"$help"; then
      flags+=(--metrics_listen=127.0.0.1:0 --metrics_port_file=/tmp/metrics_port)
    else
      metrics_port=$(free_port)
      flags+=("--metrics_listen=127.0.0.1:$metrics_port")
    fi
  else
    say "NOTE: this tandem-cloud has no --metrics_listen; /metrics not checked"
  fi
  say "starting tandem-cloud as $user: ${flags[*]}"
  # The host's network namespace: the server's ports are reachable from here.
  # Only the image's environment (and the chroot binary's host path).
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/nonexistent "${env_vars[@]}" \
    "$(command -v chroot)" --userspec="$user" "$RUN_DIR" /usr/local/bin/tandem-cloud "${flags[@]}" \
    >"$LOG" 2>&1 &
  SERVER_PID=$!
  SERVER_UID=${user%%:*}
  METRICS_PORT=$metrics_port
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT_S)) status=""
  while [ ! -s "$RUN_DIR/tmp/port" ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || server_failed "tandem-cloud exited before serving"
    [ $SECONDS -lt $deadline ] || server_failed "no port file after ${READY_TIMEOUT_S} s"
    sleep 1
  done
  PORT=$(cat "$RUN_DIR/tmp/port")
  local uids
  uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$SERVER_PID/status")
  [ "$uids" = "$SERVER_UID $SERVER_UID $SERVER_UID $SERVER_UID" ] ||
    server_failed "the server runs as UIDs $uids, not $SERVER_UID"
  while status=$(health "$PORT" readiness); [ "$status" != SERVING ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || server_failed "tandem-cloud exited while warming up"
    [ $SECONDS -lt $deadline ] || server_failed "readiness still $status after ${READY_TIMEOUT_S} s"
    sleep 1
  done
  say "gRPC health readiness: SERVING on 127.0.0.1:$PORT"
  status=$(health "$PORT" liveness)
  [ "$status" = SERVING ] || server_failed "liveness is $status"
  say "gRPC health liveness: SERVING"
}

check_metrics() {
  if [ -s "$RUN_DIR/tmp/metrics_port" ]; then METRICS_PORT=$(cat "$RUN_DIR/tmp/metrics_port"); fi
  [ -n "$METRICS_PORT" ] || return 0
  local families
  families=$(/usr/bin/python3 - "$METRICS_PORT" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10) as r:
    assert r.status == 200, r.status
    body = r.read().decode()
names = sorted({line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")})
# The counters the HPA's queue-time metric is computed from (cloud-hpa.yaml).
missing = {"tandem_cloud_queue_duration_us", "tandem_cloud_request_success"} - set(names)
assert not missing, f"missing metric families {sorted(missing)}; got {names}"
print(" ".join(names))
EOF
) || server_failed "GET /metrics on 127.0.0.1:$METRICS_PORT failed"
  say "/metrics on 127.0.0.1:$METRICS_PORT: $families"
}

stop_server() {
  kill -TERM "$SERVER_PID"
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || server_failed "still running ${STOP_TIMEOUT_S} s after SIGTERM"
    sleep 0.2
  done
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  [ $rc -eq 0 ] || server_failed "exit status $rc after SIGTERM (want 0)"
  say "SIGTERM: drained and exited 0"
}

main() {
  [ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2; exit 2; }
  BUILD_DIR=$(realpath "$1")
  SOURCE_DIR=$(realpath "$2")
  DOCKERFILE="$SOURCE_DIR/deploy/docker/Dockerfile.cloud"
  ROOT="$BUILD_DIR/runtime_root"
  LOG="$BUILD_DIR/runtime_image_test.log"
  local start=$SECONDS

  check_prerequisites
  check_mirror
  # One run at a time per build directory: they share the cached root.
  exec 9>"$BUILD_DIR/runtime_root.lock"
  flock 9
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM  # ctest's timeout: still unmount and stop the server.
  build_root
  install_server
  check_libraries
  mount_run_dir
  start_server
  wait_ready
  check_metrics
  stop_server
  say "PASS in $((SECONDS - start)) s"
}

main "$@"
