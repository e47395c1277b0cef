#!/usr/bin/env bash
# Build CDL's container image with Podman, on this machine, without a registry.
#   scripts/images.sh [cpu|gpu]     default cpu (the GPU variant, requirements/gpu-py311.txt, needs
#                                   PyPI's CUDA torch and JAX in uv's cache; only the CPU variant is
#                                   built and tested here)
# 1. The base, localhost/cdl-base:bookworm-KEY: a Debian 12 rootfs (debootstrap minbase, with
#    python3, venv, the CA certificates and Fashion-MNIST) from this machine's apt sources, imported with
#    `podman import`; kept in $CDL_IMAGES_CACHE (default /var/cache/cdl/images), KEY its recipe.
# 2. The image, localhost/cdl:VERSION-VARIANT (stacks/platform/pins.py names it): scripts/images/
#    Containerfile over the base, built with no network. Its venv is installed from uv's cache
#    and pip's find-links (mounted read-only, by hash, offline), which scripts/setup.sh fills.
#    The build context is scripts/images/context.sh's, as for the GitLab CI job (ci/image.yml),
#    which builds the same Containerfile online with kaniko; it takes the helm scripts/helm.sh
#    installed in .venv/bin (which setup.sh runs) and the tracked files of charts/cdl-model.
# Unchanged inputs (Containerfile, locks, the project's files, the base) reuse the image: their
# hash is its label cdl.inputs. Next to it in the cache goes VERSION-VARIANT.contents.txt, what
# the image holds (pip freeze, dpkg -l). A new image is scanned for secrets (scripts/images/
# scan.py: keys, tokens, this checkout's generated credentials); a finding fails the build.
# Needs root (debootstrap); installs podman and runc.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
variant="${1:-cpu}"
case "$variant" in
    cpu) torch_lock=torch-cpu-py311.txt ;;
    gpu) torch_lock=gpu-py311.txt ;;  # CUDA torch, and JAX with CUDA for Keras
    *) echo "usage: scripts/images.sh [cpu|gpu]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "images: needs root (debootstrap, podman)" >&2; exit 1; }
missing=()
for tool_package in podman:podman runc:runc debootstrap:debootstrap; do
    command -v "${tool_package%%:*}" >/dev/null || missing+=("${tool_package#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export CONTAINERS_CONF="$REPO/scripts/images/containers.conf"
. scripts/uv-env.sh
python="$REPO/.venv/bin/python"
[ -x "$python" ] || { echo "images: run scripts/setup.sh first (it fills uv's cache)" >&2; exit 1; }
cache="${CDL_IMAGES_CACHE:-/var/cache/cdl/images}"
mkdir -p "$cache"
started=$SECONDS

# 1. the base image
# with Debian's Fashion-MNIST: the raw data of the smoke's second use case (the BBC articles are
# fetched by the smoke Job itself: no package carries them)
packages=python3,python3-venv,ca-certificates,dataset-fashion-mnist
mirror="$("$python" -c 'from tests.playbooks.testhosts import debian_sources, host_apt_sources, mirror
print(mirror(debian_sources(host_apt_sources())))')"
key="$(printf '%s\n' bookworm "$packages" "$mirror" 1 | sha256sum | cut -c1-16)"
base="localhost/cdl-base:bookworm-$key"
if ! podman image exists "$base"; then
    root="$cache/base-$key"
    rm -rf "$root"
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$cache/base-$key.log" 2>&1 \
        || { tail -5 "$cache/base-$key.log" >&2; echo "images: debootstrap failed" >&2; exit 1; }
    # what a running container never reads: package downloads and lists, documentation
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/*
    tar -C "$root" -c . | podman import -q - "$base" >/dev/null
    rm -rf "$root"
fi

# 2. the image: its build context
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
# its name and tag from the one place that pins them, with this machine's registry: localhost
image="$("$python" -c 'import sys; from stacks.platform.pins import cdl_image
print(cdl_image("localhost", sys.argv[1]).ref)' "$variant")"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
sh scripts/images/context.sh "$context" "$torch_lock"  # the same as the CI job's (ci/image.yml)
cp "$REPO/.venv/bin/uv" "$context/uv/uv"  # the uv the locks pin (setup.sh installs it)
inputs="$( (cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum; podman image inspect --format '{{.Id}}' "$base") | sha256sum | cut -c1-32)"
if [ "$(podman image inspect --format '{{index .Labels "cdl.inputs"}}' "$image" 2>/dev/null)" = "$inputs" ]; then
    echo "images: $image is current (inputs $inputs)"
    exit 0
fi
wheels=""
for dir in $CDL_FIND_LINKS; do
    dir="${dir#file://}"
    if compgen -G "$dir/torch-2.13.0*.whl" >/dev/null; then wheels="$dir"; break; fi
done
[ -n "$wheels" ] || wheels="$context/no-wheels"
mkdir -p "$wheels" "$UV_CACHE_DIR"
log="$cache/build-$version-$variant.log"
if ! podman build --network=none --pull=never -f "$context/Containerfile" -t "$image" \
        --build-arg BASE="$base" --build-arg TORCH_LOCK="$torch_lock" \
        --build-arg KERAS_BACKEND="$([ "$variant" = gpu ] && echo jax || echo tensorflow)" \
        --build-arg VERSION="$version" --build-arg REVISION="$(git rev-parse --short HEAD)" \
        --build-arg SOURCE="$(git remote get-url origin 2>/dev/null || true)" \
        --label cdl.inputs="$inputs" \
        -v "$UV_CACHE_DIR:/uvcache" -v "$wheels:/wheels:ro" "$context" >"$log" 2>&1; then
    tail -15 "$log" >&2
    echo "images: the build failed (all of it in $log); a package missing from uv's cache" \
         "means scripts/setup.sh has not installed it" >&2
    exit 1
fi
# No prune: the build stage's images are the layer cache that lets a change to the project
# rebuild its own layer only
podman run --rm --network=none "$image" sh -c \
    'echo "# pip freeze (/opt/cdl)"; /opt/cdl/bin/python -m pip freeze --all; echo "# dpkg -l"; dpkg-query -W' \
    >"$cache/$version-$variant.contents.txt"
# no secret of this checkout, and no key, in any of its files (a finding fails the build)
"$python" scripts/images/scan.py "$image" >>"$log" 2>&1 || {
    tail -20 "$log" >&2; podman rmi -f "$image" >/dev/null
    echo "images: $image holds a secret (above); it was removed" >&2; exit 1; }
size="$(podman image inspect --format '{{.Size}}' "$image")"
echo "images: built $image in $((SECONDS - started)) s ($((size / 1000000)) MB; contents in $cache/$version-$variant.contents.txt)"
