#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft, broker + controller in one JVM), no Docker needed.
#
#   scripts/kafka.sh start     fetch the jars once, format storage once, start the broker in the
#                              background, wait until it answers clients, print "127.0.0.1:<port>"
#                              on stdout (the only stdout line; progress goes to stderr).
#                              Idempotent: if our broker is already up it just prints the address.
#   scripts/kafka.sh stop      stop the broker this script started (pid file): SIGTERM, wait,
#                              SIGKILL after KAFKA_STOP_TIMEOUT. Idempotent.
#   scripts/kafka.sh restart   stop, then start (data and topics are kept).
#   scripts/kafka.sh status    print "running 127.0.0.1:<port> (pid N)" and exit 0;
#                              "unresponsive ..." and exit 1 (process alive, port not answering);
#                              "stopped" and exit 3 (LSB convention for "not running").
#   scripts/kafka.sh fetch     only fetch the jars (e.g. to warm a cache).
#   scripts/kafka.sh reset     stop, then delete this port's data directory.
#   scripts/kafka.sh console-consumer ARGS...
#                              run Apache Kafka's own ConsoleConsumer (Java, not librdkafka) with
#                              ARGS, e.g. --bootstrap-server 127.0.0.1:9092 --topic decisions
#                              --from-beginning --isolation-level read_committed --timeout-ms 10000;
#                              its jars are fetched once into tools-libs/ (scripts/kafka/tools-pom.xml).
#
# Typical use:  export KAFKA_BOOTSTRAP=$(scripts/kafka.sh start)
#
# Needs java (17+) on PATH, and mvn for the first fetch (Maven Central only). Files, all under the
# git-ignored .cache/kafka/ (KAFKA_CACHE_DIR overrides):
#   libs/                       broker jars from scripts/kafka/pom.xml (re-fetched when the pom changes)
#   tools-libs/                 Kafka's command-line tools, from scripts/kafka/tools-pom.xml
#   fetch.log                   Maven output of the last fetch
#   server-<port>.properties    rendered from scripts/kafka/server.properties
#   data-<port>/                log.dirs (KAFKA_DATA_DIR overrides), formatted on first start
#   broker-<port>.log           broker output of the current run (previous run: broker-<port>.log.1)
#   broker-<port>.pid           pid of the broker this script started
#
# Environment:
#   KAFKA_PORT (9092)           client port; the controller listens on KAFKA_PORT+1
#   KAFKA_DATA_DIR              data directory (default .cache/kafka/data-<port>)
#   KAFKA_CACHE_DIR             cache directory (default <repo>/.cache/kafka)
#   KAFKA_HEAP_OPTS             default "-Xmx768m -Xms256m"
#   KAFKA_JIT_OPTS              default "" (the JVM's full JIT). A broker with C1 only
#                               ("-XX:TieredStopAtLevel=1") spends less CPU compiling and suits a short
#                               test run (bin/test sets it), but costs latency under steady load: at
#                               5,000 tx/s, at-least-once p99 18 ms with C1 only, 7-9 ms with the full JIT.
#   KAFKA_JVM_OPTS              extra JVM options
#   KAFKA_CLUSTER_ID            cluster id used when formatting (default: a fixed id)
#   KAFKA_START_TIMEOUT (60)    seconds to wait for the broker to answer
#   KAFKA_STOP_TIMEOUT (30)     seconds to wait after SIGTERM before SIGKILL
#   KAFKA_PYTHON                python with confluent_kafka for the readiness probe
#                               (default <repo>/.venv/bin/python; without it: TCP check + log line)
#   KAFKA_MVN_ARGS              extra arguments for mvn (e.g. "-s my-settings.xml")
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KDIR=$ROOT/scripts/kafka
CACHE=${KAFKA_CACHE_DIR:-$ROOT/.cache/kafka}
LIBS=$CACHE/libs
HOST=127.0.0.1
PORT=${KAFKA_PORT:-9092}
if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65534)); then
  echo "kafka.sh: error: KAFKA_PORT must be a port number below 65535, got '$PORT'" >&2
  exit 2
fi
CPORT=$((PORT + 1))
ADDR=$HOST:$PORT
DATA=${KAFKA_DATA_DIR:-$CACHE/data-$PORT}
LOG=$CACHE/broker-$PORT.log
PIDF=$CACHE/broker-$PORT.pid
PROPS=$CACHE/server-$PORT.properties
CLUSTER_ID=${KAFKA_CLUSTER_ID:-ZnJhdWRzdHJlYW0tbG9jYQ}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
PY=${KAFKA_PYTHON:-$ROOT/.venv/bin/python}

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
tail_to_stderr() { # file [lines]
  [[ -s $1 ]] || return 0
  echo "---- last lines of $1 ----" >&2
  tail -n "${2:-30}" "$1" >&2
  echo "----" >&2
}

# --- process helpers ---------------------------------------------------------------------------

alive() { # pid: running and not a zombie
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $st && $st != Z* ]]
}

our_pid() { # print the pid from our pid file if it is a live broker started with our properties
  local pid
  [[ -f $PIDF ]] || return 1
  pid=$(<"$PIDF")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  ps -ww -o args= -p "$pid" 2>/dev/null | grep -qF -- "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

port_open() { # port: something accepts TCP connections on $HOST:port
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

have_py_probe() {
  [[ -x $PY ]] && "$PY" -c 'import confluent_kafka' 2>/dev/null
}

# The broker answers a metadata request that lists it (what clients need before anything else).
PY_PROBE='
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0,
                     "socket.connection.setup.timeout.ms": 2000})
md = admin.list_topics(timeout=float(sys.argv[2]))
sys.exit(0 if md.brokers else 1)
'

answers() { # does the broker answer clients? (python probe if available, else TCP)
  if [[ ${USE_PY:-} == 1 ]]; then
    "$PY" -c "$PY_PROBE" "$ADDR" 3 >/dev/null 2>&1
  else
    port_open "$PORT"
  fi
}

# --- fetch -------------------------------------------------------------------------------------

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka 4 needs Java 17 or newer)"
  local v
  v=$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }')
  if ! [[ ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then die "Kafka 4 needs Java 17 or newer, found '${v:-unknown}' ($(command -v java))"; fi
}

# fetch_pom POM DIR JAR_GLOB WHAT LOG: copy the pom's runtime dependencies into DIR, once per pom
# version (its sha256 is stamped into DIR), through DIR.tmp so that a failed fetch leaves no half.
fetch_pom() {
  local pom=$1 dir=$2 jar=$3 what=$4 flog=$5 stamp want tmp t0
  want=$(sha256sum "$pom" | awk '{ print $1 }')
  stamp=$dir/.pom.sha256
  if [[ -f $stamp && $(<"$stamp") == "$want" ]] && compgen -G "$dir/$jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH; it is needed once to fetch $what into $dir"
  mkdir -p "$CACHE"
  tmp=$dir.tmp
  rm -rf "$tmp"
  log "fetching $what with Maven (first use; log: $flog) ..."
  t0=$(now)
  # shellcheck disable=SC2086
  if ! mvn -B -q -Dstyle.color=never ${KAFKA_MVN_ARGS:-} -f "$pom" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      >"$flog" 2>&1; then
    tail_to_stderr "$flog" 25
    rm -rf "$tmp"
    die "fetching $what with Maven failed (full log: $flog)"
  fi
  compgen -G "$tmp/$jar" >/dev/null || die "Maven finished but no $jar is in $tmp"
  echo "$want" >"$tmp/.pom.sha256"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  log "fetched $(find "$dir" -name '*.jar' | wc -l) jars in $(since "$t0")s"
}

fetch_libs() {
  fetch_pom "$KDIR/pom.xml" "$LIBS" "kafka_2.13-*.jar" "the Apache Kafka jars" "$CACHE/fetch.log"
}

fetch_tools() {
  fetch_pom "$KDIR/tools-pom.xml" "$CACHE/tools-libs" "kafka-tools-*.jar" "Apache Kafka's command-line tools" \
    "$CACHE/fetch-tools.log"
}

cmd_console_consumer() {
  need_java
  fetch_tools
  exec java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$CACHE/tools-libs/*" \
    org.apache.kafka.tools.consumer.ConsoleConsumer "$@"
}

# --- start / stop ------------------------------------------------------------------------------

render_props() {
  local esc_data
  esc_data=$(printf '%s' "$DATA" | sed 's/[\\&|]/\\&/g')
  sed -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CPORT|g" \
      -e "s|@DATA_DIR@|$esc_data|g" "$KDIR/server.properties" >"$PROPS.tmp"
  mv "$PROPS.tmp" "$PROPS"
}

jvm_log_opts() {
  printf '%s\n' "-Dlog4j2.configurationFile=$KDIR/log4j2.properties" "-Dkafka.logs.dir=$CACHE"
}

format_storage() {
  [[ -f $DATA/meta.properties ]] && return 0
  mkdir -p "$DATA"
  log "formatting storage in $DATA (cluster id $CLUSTER_ID) ..."
  local flog=$CACHE/format-$PORT.log opts
  mapfile -t opts < <(jvm_log_opts)
  # shellcheck disable=SC2206
  opts+=(-XX:TieredStopAtLevel=1)  # a one-shot tool: C1 is enough
  if ! java -Xmx256m "${opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
      -t "$CLUSTER_ID" -c "$PROPS" --ignore-formatted >"$flog" 2>&1; then
    tail_to_stderr "$flog" 25
    die "formatting the storage in $DATA failed (log: $flog)"
  fi
}

wait_ready() { # pid t0
  local pid=$1 t0=$2 deadline
  deadline=$(($(date +%s) + START_TIMEOUT))
  USE_PY=0
  if have_py_probe; then USE_PY=1; fi
  while :; do
    if ! alive "$pid"; then
      tail_to_stderr "$LOG" 40
      rm -f "$PIDF"
      die "the broker exited during startup (log: $LOG)"
    fi
    if grep -q 'Kafka Server started' "$LOG" 2>/dev/null && answers; then
      log "broker ready on $ADDR in $(since "$t0")s (pid $pid, log $LOG)"
      return 0
    fi
    if (($(date +%s) >= deadline)); then
      tail_to_stderr "$LOG" 40
      log "stopping the broker that did not get ready"
      stop_pid "$pid"
      die "the broker did not answer on $ADDR within ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.25
  done
}

cmd_start() {
  local pid t0
  mkdir -p "$CACHE"
  if command -v flock >/dev/null 2>&1; then # serialise concurrent starts/stops on this port
    exec 9>"$CACHE/.lock-$PORT"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 600)) 9 || die "could not take the lock $CACHE/.lock-$PORT"
  fi
  need_java
  if pid=$(our_pid); then
    t0=$(now)
    if grep -q 'Kafka Server started' "$LOG" 2>/dev/null && port_open "$PORT"; then
      log "already running on $ADDR (pid $pid)"
    else
      log "broker (pid $pid) is starting; waiting for it"
      wait_ready "$pid" "$t0"
    fi
    echo "$ADDR"
    return 0
  fi
  rm -f "$PIDF"
  if port_open "$PORT"; then
    die "port $PORT on $HOST is in use by a process this script did not start; stop it or set KAFKA_PORT"
  fi
  if port_open "$CPORT"; then
    die "controller port $CPORT (KAFKA_PORT+1) on $HOST is in use; stop that process or set KAFKA_PORT"
  fi
  fetch_libs
  render_props
  format_storage

  local heap opts
  # shellcheck disable=SC2206
  heap=(${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m})
  mapfile -t opts < <(jvm_log_opts)
  # shellcheck disable=SC2206
  opts+=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
         -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
         ${KAFKA_JIT_OPTS:-} ${KAFKA_JVM_OPTS:-})
  [[ -f $LOG ]] && mv -f "$LOG" "$LOG.1"
  log "starting the broker on $ADDR (controller $HOST:$CPORT, data $DATA) ..."
  t0=$(now)
  # Started from a subshell so the JVM is not our child (no zombie; it outlives this script).
  # fd 9 (the lock) is closed for it; stdin from /dev/null, output to the log.
  (
    cd "$CACHE"
    nohup java "${heap[@]}" "${opts[@]}" -cp "$LIBS/*" kafka.Kafka "$PROPS" \
      </dev/null >"$LOG" 2>&1 9>&- &
    echo $! >"$PIDF"
  )
  pid=$(<"$PIDF")
  wait_ready "$pid" "$t0"
  echo "$ADDR"
}

stop_pid() { # pid
  local pid=$1 deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(($(date +%s) + STOP_TIMEOUT))
  while alive "$pid"; do
    if (($(date +%s) >= deadline)); then
      log "broker (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDF"
}

cmd_stop() {
  local pid t0
  mkdir -p "$CACHE"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock-$PORT"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 600)) 9 || die "could not take the lock $CACHE/.lock-$PORT"
  fi
  if ! pid=$(our_pid); then
    rm -f "$PIDF"
    log "not running (no broker of ours on port $PORT)"
    return 0
  fi
  t0=$(now)
  log "stopping the broker (pid $pid) ..."
  stop_pid "$pid"
  log "stopped in $(since "$t0")s"
}

cmd_status() {
  local pid
  if pid=$(our_pid); then
    if port_open "$PORT"; then
      echo "running $ADDR (pid $pid)"
      return 0
    fi
    echo "unresponsive: pid $pid alive but $ADDR does not accept connections (log: $LOG)"
    return 1
  fi
  echo "stopped"
  return 3
}

cmd_reset() {
  cmd_stop
  log "deleting $DATA"
  rm -rf "$DATA"
}

usage() {
  echo "usage: $0 start|stop|restart|status|fetch|reset   (see the header of this script)" >&2
  exit 2
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  fetch) need_java; fetch_libs ;;
  reset) cmd_reset ;;
  console-consumer) shift; cmd_console_consumer "$@" ;;
  *) usage ;;
esac
