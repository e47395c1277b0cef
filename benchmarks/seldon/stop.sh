#!/usr/bin/env bash
# Stop Seldon servers started by run.sh, then delete their namespace once nothing runs in it.
#   stop.sh PORT NETNS   the server run.sh started on PORT in NETNS (with its metrics server)
#   stop.sh NETNS        every process in NETNS
# Only processes run.sh started are signalled, by id: the server's process group (run.sh starts
# it with setsid and records its id), or the processes inside NETNS; never anything by name.
set -euo pipefail

if [ $# -ge 2 ]; then
    port="$1"; netns="$2"
else
    port=""; netns="${1:?usage: stop.sh [PORT] NETNS}"
fi
[ -e "/run/netns/$netns" ] || exit 0

group=""
if [ -n "$port" ]; then
    pidfile="${SELDON_RUN_DIR:-/tmp}/seldon-$netns-$port.pid"
    group="$(cat "$pidfile" 2>/dev/null || true)"
    rm -f "$pidfile"
    # the recorded id must still be a process in this namespace, not a reused pid
    ip netns pids "$netns" | grep -qx -- "${group:-none}" || group=""
fi

targets() {
    if [ -n "$port" ]; then
        [ -z "$group" ] || pgrep -g "$group" || true
    else
        ip netns pids "$netns"
    fi
}
for signal in TERM KILL; do
    mapfile -t pids < <(targets)
    [ "${#pids[@]}" -gt 0 ] || break
    kill "-$signal" "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 20); do
        [ -n "$(targets)" ] || break
        sleep 0.5
    done
done
[ -n "$(ip netns pids "$netns")" ] || ip netns del "$netns"
