#!/usr/bin/env bash
# Stop every process in a namespace made by run.sh, then delete the namespace.
#   stop.sh NETNS
# Only what runs inside NETNS is signalled: run.sh's servers and their children, nothing else.
set -euo pipefail

netns="${1:?usage: stop.sh NETNS}"
[ -e "/run/netns/$netns" ] || exit 0
mapfile -t pids < <(ip netns pids "$netns")
if [ "${#pids[@]}" -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 20); do
        [ -z "$(ip netns pids "$netns")" ] && break
        sleep 0.5
    done
    mapfile -t pids < <(ip netns pids "$netns")
    [ "${#pids[@]}" -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
fi
ip netns del "$netns"
