#!/usr/bin/env bash
# The compose deployment, end to end (issue 18): builds the images, brings
# docker-compose.yml up under a project of its own, places calls through
# Kamailio with SIPp from this host, kills one node's container (kill -9)
# and places calls again, then tears the stack down (volumes too), however
# it ends. Passes only if `docker-compose config` is clean, the CLI inside a
# node reads the shared store, every call of both rounds was admitted, both
# nodes took calls in the first round, and the surviving node took every
# call of the second. `.ci/run` runs it where a Docker engine answers.
#
#   deploy/docker/compose-test.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! docker info >/dev/null 2>&1; then
  echo "compose-test: skipped: no Docker engine answers (docker info)" >&2
  exit 0
fi
command -v sipp >/dev/null || { echo "compose-test: needs sipp (./dev test installs sip-tester)" >&2; exit 1; }

export COMPOSE_PROJECT_NAME=dialgate-compose-test
export POSTGRES_PASSWORD="ci-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SIP_PORT=$(free_port) API_PORT_A=$(free_port) API_PORT_B=$(free_port)
export SIP_PORT API_PORT_A API_PORT_B

KAMAILIO=172.28.0.4
HOST=172.28.0.1      # this host on the compose network (its gateway)
CODE=123456789       # the demo room's, seeded by node-a
work=$(mktemp -d)

down() {
  docker-compose logs --no-color > "$work/compose.log" 2>&1 || true
  docker-compose down -v --remove-orphans >/dev/null 2>&1 || true
  echo "compose-test: stack removed (logs were in $work/compose.log)" >&2
}

docker-compose config -q
if docker network ls -q --filter "name=${COMPOSE_PROJECT_NAME}_dialgate" | grep -q .; then
  docker-compose down -v --remove-orphans >/dev/null 2>&1 || true
fi
if [ "${1:-}" != --no-build ]; then
  ./dev images
fi

trap down EXIT
started=$(date +%s)
docker-compose up -d >/dev/null 2>&1 || { docker-compose up -d; exit 1; }

# Healthy within 120 s (the nodes answer /healthz; PostgreSQL pg_isready).
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$(docker-compose ps -q "$1")" 2>/dev/null)" = healthy ]; }
for _ in $(seq 1 120); do
  if healthy node-a && healthy node-b; then break; fi
  sleep 1
done
healthy node-a && healthy node-b || { echo "compose-test: nodes not healthy within 120 s" >&2; docker-compose ps >&2; exit 1; }
echo "compose-test: stack up and healthy in $(( $(date +%s) - started )) s" >&2
# The CLI inside a node reads the shared store (DIALGATE_DATABASE).
docker-compose exec -T node-a dialgate room list --json | grep -q '"name":"demo"' \
  || { echo "compose-test: the CLI in node-a does not list the demo room" >&2; exit 1; }
# Kamailio's first probes mark both nodes up.
sleep 3

admitted() { docker-compose logs --no-color "$1" 2>/dev/null | grep -c 'outcome="admitted"' || true; }

# N calls through Kamailio by SIP INFO, 2 per second; SIPp exits 0 only
# if every one was admitted and hung up cleanly.
calls() {
  local n=$1 port=$2
  (cd "$work" && timeout 120 sipp "$KAMAILIO:5060" -sf "$OLDPWD/sip-fixtures/scenarios/uac_info.xml" \
     -s +15550100 -m "$n" -r 2 -l 20 -i "$HOST" -p "$port" -mi "$HOST" -mp "$((port + 1000))" \
     -timeout 60s -timeout_error -key code "$CODE#" -key hold_ms 1000 \
     -trace_stat -trace_err >"$work/sipp-$port.out" 2>&1) || {
    echo "compose-test: SIPp failed ($n calls from port $port):" >&2
    grep -E "Successful call|Failed call" "$work/sipp-$port.out" >&2 || tail -20 "$work/sipp-$port.out" >&2
    return 1
  }
}

calls 8 5300
a1=$(admitted node-a) b1=$(admitted node-b)
echo "compose-test: round 1: 8 calls through Kamailio, admitted by node-a $a1, node-b $b1" >&2
[ $((a1 + b1)) -eq 8 ] && [ "$a1" -ge 1 ] && [ "$b1" -ge 1 ] || { echo "compose-test: round 1 not spread over both nodes" >&2; exit 1; }

killed=$(date +%s)
docker-compose kill -s KILL node-b >/dev/null 2>&1
calls 8 5400
a2=$(admitted node-a)
echo "compose-test: round 2, begun as node-b was killed (took $(( $(date +%s) - killed )) s): 8 calls, 0 failed, node-a admitted $((a2 - a1))" >&2
[ $((a2 - a1)) -eq 8 ] || { echo "compose-test: node-a did not take every call of round 2" >&2; exit 1; }
echo "compose-test: passed" >&2
