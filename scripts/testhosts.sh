#!/usr/bin/env bash
# Prepare this Debian machine for the converge tests in tests/playbooks: install what boots the
# throwaway Debian 12 hosts, then build the cached rootfs (kept in /var/cache/cdl/testhosts,
# or $CDL_TESTHOSTS_CACHE, keyed by its recipe; a no-op when it is current).
#   scripts/testhosts.sh            install and build if missing
#   scripts/testhosts.sh --refresh  rebuild the rootfs (newer Debian packages)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" -ne 0 ]; then
    echo "testhosts: needs root (debootstrap, systemd-nspawn, network namespaces)" >&2
    exit 1
fi

missing=()
for tool_package in debootstrap:debootstrap systemd-nspawn:systemd-container ip:iproute2 \
                    ssh:openssh-client ssh-keygen:openssh-client; do
    command -v "${tool_package%%:*}" >/dev/null || missing+=("${tool_package#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python="$REPO/.venv/bin/python"
[ -x "$python" ] || python=python3
force=()
[ "${1:-}" = "--refresh" ] && force=(--force)
cd "$REPO"
exec "$python" -m tests.playbooks.testhosts build "${force[@]}"
