#!/usr/bin/env bash
# CodeRAG's scale-out setup on loopback: Dagster instance on PostgreSQL, shard steps on
# dagster-celery workers fed through Redis. Everything listens on 127.0.0.1 only.
#
#   bash scripts/cluster.sh up              # Postgres + Redis + 2 Celery workers (idempotent)
#   bash scripts/cluster.sh index PATH      # coderag index PATH through the celery executor
#   bash scripts/cluster.sh search QUERY [coderag search options]
#   bash scripts/cluster.sh status          # which services run; workers that answer a ping
#   bash scripts/cluster.sh down            # stop workers, Redis, and Postgres if `up` started it
#   bash scripts/cluster.sh destroy         # down, then drop the Postgres cluster `up` created
#                                           # (or the database, in a cluster that existed before)
#   bash scripts/cluster.sh env             # print the environment as `export` lines
#
# Settings (environment variables; defaults are for one machine). The same variables configure
# deploy/cluster/dagster.yaml and deploy/cluster/celery.yaml, and every worker must see them.
#   CODERAG_CLUSTER_DIR     data/cluster           logs, pid files, Redis working directory
#   CODERAG_DATA            $CODERAG_CLUSTER_DIR/data   DAGSTER_HOME, shard files, indexes, models
#   CODERAG_INSTANCE_YAML   deploy/cluster/dagster.yaml  instance config copied to DAGSTER_HOME
#   CODERAG_CELERY_YAML     deploy/cluster/celery.yaml   worker config (broker/backend from env)
#   CODERAG_REDIS_PORT      6379
#   CODERAG_CELERY_BROKER   redis://127.0.0.1:$CODERAG_REDIS_PORT/0
#   CODERAG_CELERY_BACKEND  redis://127.0.0.1:$CODERAG_REDIS_PORT/1
#   CODERAG_PG_CLUSTER      15/main   Debian PostgreSQL cluster (created with pg_createcluster
#                                     on CODERAG_PG_PORT if it does not exist)
#   CODERAG_PG_HOST 127.0.0.1  CODERAG_PG_PORT (the cluster's port; 5432 for a new one)
#   CODERAG_PG_USER dagster    CODERAG_PG_PASSWORD dagster    CODERAG_PG_DB coderag
#   CODERAG_CLUSTER_WORKERS 2         worker processes (each `-c 1`: one step at a time)
#   CODERAG_WORKER_TIMEOUT  90        seconds `up` waits for every worker to answer a ping
# Postgres administration (pg_ctlcluster, pg_createcluster, psql as the postgres user) needs root.
set -euo pipefail

PROJECT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${CODERAG_VENV:-$PROJECT/.venv}"
PY="$VENV/bin/python"

die() { echo "error: $*" >&2; exit 2; }
note() { echo "cluster: $*" >&2; }

# ------------------------------------------------------------------ configuration

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

export CODERAG_CLUSTER_DIR="$(abspath "${CODERAG_CLUSTER_DIR:-$PROJECT/data/cluster}")"
export CODERAG_DATA="$(abspath "${CODERAG_DATA:-$CODERAG_CLUSTER_DIR/data}")"
export DAGSTER_HOME="$CODERAG_DATA"
export CODERAG_INSTANCE_YAML="$(abspath "${CODERAG_INSTANCE_YAML:-$PROJECT/deploy/cluster/dagster.yaml}")"
CELERY_YAML="$(abspath "${CODERAG_CELERY_YAML:-$PROJECT/deploy/cluster/celery.yaml}")"
export CODERAG_REDIS_PORT="${CODERAG_REDIS_PORT:-6379}"
export CODERAG_CELERY_BROKER="${CODERAG_CELERY_BROKER:-redis://127.0.0.1:$CODERAG_REDIS_PORT/0}"
export CODERAG_CELERY_BACKEND="${CODERAG_CELERY_BACKEND:-redis://127.0.0.1:$CODERAG_REDIS_PORT/1}"
export CODERAG_EXECUTOR=celery
PG_CLUSTER="${CODERAG_PG_CLUSTER:-15/main}"
PG_VERSION="${PG_CLUSTER%%/*}"
PG_NAME="${PG_CLUSTER#*/}"
export CODERAG_PG_HOST="${CODERAG_PG_HOST:-127.0.0.1}"
export CODERAG_PG_USER="${CODERAG_PG_USER:-dagster}"
export CODERAG_PG_PASSWORD="${CODERAG_PG_PASSWORD:-dagster}"
export CODERAG_PG_DB="${CODERAG_PG_DB:-coderag}"
WORKERS="${CODERAG_CLUSTER_WORKERS:-2}"
WORKER_TIMEOUT="${CODERAG_WORKER_TIMEOUT:-90}"
# Several processes on 2 cores: OpenVINO must not pin every process to the same core.
export ENABLE_CPU_PINNING="${ENABLE_CPU_PINNING:-NO}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
export PATH="$VENV/bin:$PATH"

DIR="$CODERAG_CLUSTER_DIR"
REDIS_PID="$DIR/redis.pid"

case "$PG_NAME$PG_VERSION" in *[!A-Za-z0-9_.-]*) die "CODERAG_PG_CLUSTER=$PG_CLUSTER is not VERSION/NAME" ;; esac
for value in "$CODERAG_PG_USER" "$CODERAG_PG_DB"; do
  case "$value" in *[!A-Za-z0-9_]*|"") die "Postgres names must be [A-Za-z0-9_]+, got '$value'" ;; esac
done
case "$CODERAG_PG_PASSWORD" in *"'"*) die "CODERAG_PG_PASSWORD must not contain a single quote" ;; esac

pg_cluster_port() {  # the port of an existing Debian cluster, empty if it does not exist
  local conf="/etc/postgresql/$PG_VERSION/$PG_NAME/postgresql.conf"
  [ -f "$conf" ] || return 0
  sed -n 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p' "$conf" | tail -1
}
existing_port="$(pg_cluster_port || true)"
if [ -n "$existing_port" ] && [ -n "${CODERAG_PG_PORT:-}" ] && [ "$existing_port" != "$CODERAG_PG_PORT" ]; then
  die "CODERAG_PG_PORT=$CODERAG_PG_PORT but PostgreSQL cluster $PG_CLUSTER listens on $existing_port"
fi
export CODERAG_PG_PORT="${CODERAG_PG_PORT:-${existing_port:-5432}}"

# ------------------------------------------------------------------ checks

redis_up() { redis-cli -h 127.0.0.1 -p "$CODERAG_REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

postgres_problem() {  # prints what is wrong with PostgreSQL; nothing when the instance can log in
  if ! pg_isready -q -h "$CODERAG_PG_HOST" -p "$CODERAG_PG_PORT" -t 3 2>/dev/null; then
    echo "PostgreSQL (Dagster instance storage) is not reachable at $CODERAG_PG_HOST:$CODERAG_PG_PORT"
    return 0
  fi
  "$PY" - <<'EOF' 2>/dev/null
import os, psycopg2
try:
    psycopg2.connect(host=os.environ["CODERAG_PG_HOST"], port=os.environ["CODERAG_PG_PORT"],
                     user=os.environ["CODERAG_PG_USER"], password=os.environ["CODERAG_PG_PASSWORD"],
                     dbname=os.environ["CODERAG_PG_DB"], connect_timeout=3).close()
except psycopg2.Error as exc:
    last = (str(exc).strip().splitlines() or ["?"])[-1]
    print(f"PostgreSQL at {os.environ['CODERAG_PG_HOST']}:{os.environ['CODERAG_PG_PORT']} refuses "
          f"user {os.environ['CODERAG_PG_USER']} on database {os.environ['CODERAG_PG_DB']}: {last}")
EOF
}

postgres_up() { [ -z "$(postgres_problem)" ]; }

workers_answering() {  # how many Celery workers answer a ping on the broker
  "$PY" - <<'EOF' 2>/dev/null || echo 0
import os
from celery import Celery
app = Celery(broker=os.environ["CODERAG_CELERY_BROKER"])
app.conf.broker_connection_retry_on_startup = False
print(len(app.control.ping(timeout=1.0) or []))
EOF
}

running() {  # running PID: exists and is not a zombie waiting to be reaped
  local stat
  stat="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  case "$stat" in Z*|"") return 1 ;; esac
}

pid_alive() { [ -f "$1" ] && running "$(cat "$1")"; }

require_services() {  # name the service that is down, before anything is launched
  local down=() pg
  redis_up || down+=("Redis (Celery broker $CODERAG_CELERY_BROKER) is not reachable at 127.0.0.1:$CODERAG_REDIS_PORT")
  pg="$(postgres_problem)"
  [ -z "$pg" ] || down+=("$pg")
  if [ "${#down[@]}" -gt 0 ]; then
    for line in "${down[@]}"; do echo "error: $line" >&2; done
    echo "hint: bash scripts/cluster.sh up (with the same CODERAG_* settings)" >&2
    exit 2
  fi
  local answering
  answering="$(workers_answering)"
  if [ "$answering" = 0 ]; then
    echo "error: no Celery worker answers on $CODERAG_CELERY_BROKER (steps would wait forever);" \
      "start them with: bash scripts/cluster.sh up" >&2
    exit 2
  fi
}

# ------------------------------------------------------------------ up

install_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})"
  note "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_extra() {
  "$PY" -c "import dagster_celery, dagster_postgres, psycopg2" 2>/dev/null && return 0
  note "installing the cluster extra (dagster-postgres, dagster-celery[redis], psycopg2-binary)"
  "$PY" -m pip install --quiet --disable-pip-version-check -c "$PROJECT/constraints.txt" \
    -e "$PROJECT[cluster]"
}

as_postgres() { runuser -u postgres -- "$@"; }

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$CODERAG_PG_PORT" "$@"; }

start_postgres() {
  [ "$(id -u)" = 0 ] || die "starting PostgreSQL with pg_ctlcluster needs root"
  if [ -z "$(pg_cluster_port || true)" ]; then
    note "creating PostgreSQL cluster $PG_CLUSTER on 127.0.0.1:$CODERAG_PG_PORT"
    pg_createcluster --port "$CODERAG_PG_PORT" -o "listen_addresses='127.0.0.1'" \
      "$PG_VERSION" "$PG_NAME" >"$DIR/pg_createcluster.log"
    touch "$DIR/pg.created"
  fi
  if pg_ctlcluster "$PG_VERSION" "$PG_NAME" status >/dev/null 2>&1; then
    note "PostgreSQL $PG_CLUSTER already running on port $CODERAG_PG_PORT"
  else
    note "starting PostgreSQL $PG_CLUSTER on 127.0.0.1:$CODERAG_PG_PORT"
    pg_ctlcluster "$PG_VERSION" "$PG_NAME" start -- -o "-c listen_addresses=127.0.0.1"
    touch "$DIR/pg.started"
  fi
  local exists
  exists="$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$CODERAG_PG_USER'")"
  if [ "$exists" != 1 ]; then
    psql_admin -c "CREATE ROLE $CODERAG_PG_USER LOGIN PASSWORD '$CODERAG_PG_PASSWORD'"
  fi
  exists="$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$CODERAG_PG_DB'")"
  if [ "$exists" != 1 ]; then
    psql_admin -c "CREATE DATABASE $CODERAG_PG_DB OWNER $CODERAG_PG_USER"
  fi
  local problem
  problem="$(postgres_problem)"
  [ -z "$problem" ] || die "$problem (see /var/log/postgresql/postgresql-$PG_VERSION-$PG_NAME.log)"
}

start_redis() {
  if pid_alive "$REDIS_PID" && redis_up; then
    note "Redis already running on 127.0.0.1:$CODERAG_REDIS_PORT"
    return 0
  fi
  redis_up && die "port $CODERAG_REDIS_PORT already has a Redis this script did not start; pick another CODERAG_REDIS_PORT"
  note "starting Redis on 127.0.0.1:$CODERAG_REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$CODERAG_REDIS_PORT" --save '' \
    --appendonly no --dir "$DIR" --pidfile "$REDIS_PID" --logfile "$DIR/redis.log"
  for _ in $(seq 50); do redis_up && return 0; sleep 0.1; done
  die "Redis did not answer on 127.0.0.1:$CODERAG_REDIS_PORT (see $DIR/redis.log)"
}

prepare_instance() {
  # The instance config in DAGSTER_HOME, and its Postgres schema created once, here, before
  # several workers race to create it.
  "$PY" - <<'EOF'
from coderag_assets.settings import load_settings, prepare_dagster_env

prepare_dagster_env(load_settings())
from dagster import DagsterInstance

with DagsterInstance.get() as instance:
    kind = type(instance.run_storage).__name__
    if "Postgres" not in kind:
        raise SystemExit(f"error: the instance in {instance.root_directory} uses {kind}, not Postgres")
EOF
}

start_workers() {
  local i started=0 pids=() names=()
  for i in $(seq "$WORKERS"); do
    if pid_alive "$DIR/w$i.pid"; then
      continue
    fi
    rm -f "$DIR/w$i.pid"
    # `--detach`: celery daemonizes and writes its pid file; `-c 1`: one step at a time in one
    # long-lived pool process, which keeps the embedding model loaded across steps.
    dagster-celery worker start -A dagster_celery.app -y "$CELERY_YAML" -n "w$i" -- \
      -c 1 --detach --pidfile="$DIR/w$i.pid" --logfile="$DIR/w$i.log" \
      >"$DIR/w$i.start.log" 2>&1 &
    pids+=("$!")
    names+=("w$i")
    started=$((started + 1))
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || die "worker ${names[$i]} did not start (see $DIR/${names[$i]}.start.log)"
  done
  local answering=0 deadline=$((SECONDS + WORKER_TIMEOUT))
  while :; do
    answering="$(workers_answering)"
    [ "$answering" -ge "$WORKERS" ] || [ "$SECONDS" -ge "$deadline" ] && break
    sleep 1
  done
  [ "$answering" -ge "$WORKERS" ] ||
    die "$answering of $WORKERS Celery workers answer after ${WORKER_TIMEOUT}s (see $DIR/w*.log)"
  note "$answering Celery workers answer on $CODERAG_CELERY_BROKER ($started started now)"
}

cmd_up() {
  mkdir -p "$DIR" "$CODERAG_DATA"
  install_packages
  install_extra
  start_postgres
  start_redis
  prepare_instance
  start_workers
  cmd_status
}

# ------------------------------------------------------------------ down

stop_pidfile() {  # stop_pidfile FILE LABEL: TERM (warm shutdown: finish the current step), then KILL
  local file="$1" label="$2" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if running "$pid"; then
    note "stopping $label (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then
      note "$label did not stop in 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

cmd_down() {
  local f
  for f in "$DIR"/w*.pid; do
    [ -e "$f" ] || continue
    stop_pidfile "$f" "worker $(basename "$f" .pid)"
  done
  if pid_alive "$REDIS_PID"; then
    redis-cli -h 127.0.0.1 -p "$CODERAG_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
  stop_pidfile "$REDIS_PID" "Redis"
  if [ -f "$DIR/pg.started" ]; then
    if pg_ctlcluster "$PG_VERSION" "$PG_NAME" status >/dev/null 2>&1; then
      note "stopping PostgreSQL $PG_CLUSTER"
      pg_ctlcluster "$PG_VERSION" "$PG_NAME" stop -m fast
    fi
    rm -f "$DIR/pg.started"
  else
    note "PostgreSQL $PG_CLUSTER was not started by this script; left running"
  fi
}

cmd_destroy() {
  cmd_down
  if [ -f "$DIR/pg.created" ]; then
    note "dropping PostgreSQL cluster $PG_CLUSTER"
    pg_dropcluster --stop "$PG_VERSION" "$PG_NAME"
    rm -f "$DIR/pg.created"
  elif [ -n "$(pg_cluster_port || true)" ]; then
    if pg_ctlcluster "$PG_VERSION" "$PG_NAME" status >/dev/null 2>&1; then
      note "dropping database $CODERAG_PG_DB in $PG_CLUSTER"
      psql_admin -c "DROP DATABASE IF EXISTS $CODERAG_PG_DB WITH (FORCE)"
    else
      note "PostgreSQL $PG_CLUSTER is stopped; database $CODERAG_PG_DB not dropped"
    fi
  fi
}

# ------------------------------------------------------------------ status, index, search

cmd_status() {  # exit 0 only when Postgres, Redis and every worker answer
  local pg=DOWN redis=DOWN answering=0
  postgres_up && pg=up
  echo "postgres  $pg  $CODERAG_PG_USER@$CODERAG_PG_HOST:$CODERAG_PG_PORT/$CODERAG_PG_DB (cluster $PG_CLUSTER)"
  redis_up && redis=up
  echo "redis     $redis  127.0.0.1:$CODERAG_REDIS_PORT (broker $CODERAG_CELERY_BROKER, backend $CODERAG_CELERY_BACKEND)"
  [ "$redis" = up ] && answering="$(workers_answering)"
  echo "workers   $answering answering (expected $WORKERS; logs $DIR/w*.log)"
  echo "data      $CODERAG_DATA (DAGSTER_HOME; instance $CODERAG_INSTANCE_YAML)"
  [ "$pg" = up ] && [ "$redis" = up ] && [ "$answering" -ge "$WORKERS" ]
}

cmd_index() {
  [ "$#" -ge 1 ] || die "usage: scripts/cluster.sh index PATH [coderag index options]"
  require_services
  "$VENV/bin/coderag" index "$@"
}

cmd_search() {
  [ "$#" -ge 1 ] || die "usage: scripts/cluster.sh search QUERY [coderag search options]"
  "$VENV/bin/coderag" search "$@"
}

cmd_env() {
  local name
  for name in CODERAG_DATA DAGSTER_HOME CODERAG_INSTANCE_YAML CODERAG_EXECUTOR \
    CODERAG_CELERY_BROKER CODERAG_CELERY_BACKEND CODERAG_PG_HOST CODERAG_PG_PORT \
    CODERAG_PG_USER CODERAG_PG_PASSWORD CODERAG_PG_DB ENABLE_CPU_PINNING HF_HUB_OFFLINE \
    TRANSFORMERS_OFFLINE; do
    printf 'export %s=%q\n' "$name" "${!name}"
  done
}

command="${1:-}"
[ "$#" -gt 0 ] && shift
case "$command" in
  up) cmd_up ;;
  down) cmd_down ;;
  destroy) cmd_destroy ;;
  status) cmd_status ;;
  index) cmd_index "$@" ;;
  search) cmd_search "$@" ;;
  env) cmd_env ;;
  *) die "usage: scripts/cluster.sh up|index PATH|search QUERY|status|down|destroy|env" ;;
esac
