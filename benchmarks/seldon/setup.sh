#!/usr/bin/env bash
# Build the Seldon baseline's own virtualenv (benchmarks/seldon/.venv) from requirements.txt,
# apart from the project's .venv: seldon-core 1.18.2 pins Flask 2, numpy 1 and protobuf 3, which
# the project's MLServer 1.7.1 environment cannot share. Also installs the tools run.sh and the
# load test use (iproute2 for namespaces, curl, wrk) when missing.
#   benchmarks/seldon/setup.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

missing=()
for tool in ip:iproute2 curl:curl wrk:wrk; do
    command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "setup: install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python 3.11 like the project: seldon-core 1.18.2 is the newest release that supports it.
python="$(command -v python3.11 || command -v python3)"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    { echo "setup: needs Python 3.11 ($python is not)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv

# torch first, on its own and with its dependencies, so pip picks the same (CPU) build as the
# project's setup; an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# --no-deps: the file pins every package, and its protobuf deliberately breaks seldon-core's pin.
.venv/bin/python -m pip install -q --no-deps -r requirements.txt

# That protobuf pin must be the only broken requirement, and seldon-core must import with it.
conflicts="$(.venv/bin/python -m pip check 2>&1 | grep -v '^seldon-core 1.18.2 has requirement protobuf' || true)"
[ -z "$conflicts" ] || { echo "setup: unexpected dependency conflicts: $conflicts" >&2; exit 1; }
if ! out="$(PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python .venv/bin/python -c \
        'import seldon_core.microservice, seldon_core.wrapper, keras, torch, nltk' 2>&1)"; then
    echo "$out" >&2
    echo "setup: seldon-core or a model framework does not import" >&2
    exit 1
fi
echo "setup: Seldon baseline ready in $here/.venv"
