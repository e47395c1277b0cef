#!/usr/bin/env bash
# Serve one CDL model folder behind Seldon Core's Python wrapper (REST only), inside a network
# namespace, and return once it answers.
#   run.sh MODEL_CLASS MODEL_FOLDER PORT NETNS [WORKERS]
#     MODEL_CLASS  NewsModel or FashionModel (a module of this folder)
#     MODEL_FOLDER an MLServer model folder made by `cdl demo` (artifacts/ and cdl_serving/)
#     WORKERS      gunicorn workers, default 1, each with 1 thread (Seldon's defaults)
#   env: SELDON_METRICS_PORT (default PORT+1), SELDON_START_TIMEOUT seconds (default 180),
#        SELDON_RUN_DIR for seldon-NETNS-PORT.log and .pid (default /tmp)
# Stop with stop.sh PORT NETNS (that server) or stop.sh NETNS (all of them).
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: run.sh MODEL_CLASS MODEL_FOLDER PORT NETNS [WORKERS]" >&2
    exit 2
fi
class="$1"; folder="$(cd "$2" && pwd)"; port="$3"; netns="$4"; workers="${5:-1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
metrics_port="${SELDON_METRICS_PORT:-$((port + 1))}"
run="${SELDON_RUN_DIR:-/tmp}/seldon-$netns-$port"
log="$run.log"
[ -x "$here/.venv/bin/seldon-core-microservice" ] || { echo "run: run setup.sh first" >&2; exit 1; }

# seldon-core binds 0.0.0.0 with no option to change it: inside our own namespace that is only
# the namespace's loopback, so nothing is reachable from the host's interfaces.
[ -e "/run/netns/$netns" ] || ip netns add "$netns"
ip netns exec "$netns" ip link set lo up

# The gRPC server is off (--grpc-workers 0); the metrics server cannot be turned off, so it gets
# its own port. seldon-core's generated protobuf code predates protobuf 4, which TensorFlow 2.21
# needs: the pure-Python protobuf implementation still loads it (see requirements.txt).
# setsid: the server outlives the shell that started it (and its Ctrl-C).
pythonpath=""
[ "$class" = NewsModel ] && pythonpath="$here/hide_tensorflow"  # see its __init__.py
cd "$here"
ip netns exec "$netns" env CDL_MODEL_FOLDER="$folder" PYTHONPATH="$pythonpath" \
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python \
    setsid "$here/.venv/bin/seldon-core-microservice" "$class" --service-type MODEL \
    --http-port "$port" --metrics-port "$metrics_port" --grpc-workers 0 \
    --workers "$workers" --threads 1 >"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$run.pid"  # the server's process group too (setsid), for stop.sh

# /health/ping is served by a gunicorn worker, which answers only once load() has run.
deadline=$((SECONDS + ${SELDON_START_TIMEOUT:-180}))
until ip netns exec "$netns" curl -sf -o /dev/null "http://127.0.0.1:$port/health/ping"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
        echo "run: $class did not come up on $netns:$port; last lines of $log:" >&2
        tail -n 20 "$log" >&2
        "$here/stop.sh" "$port" "$netns"
        exit 1
    fi
    sleep 0.5
done
echo "run: $class serving on http://127.0.0.1:$port in netns $netns (pid $pid, log $log)"
