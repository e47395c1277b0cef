#!/usr/bin/env bash
# Regenerate the lock files in requirements/ from pyproject.toml (and requirements/tools.in), with
# the uv pinned there; scripts/setup.sh installs from them. Run it after changing a dependency:
#   scripts/lock.sh            all locks, for CPython 3.11 and 3.12 on x86_64 Linux (glibc >= 2.28)
#   scripts/lock.sh --upgrade  the same, moving every pin to the newest release allowed
# For each Python X.Y (py311, py312):
#   cdl-pyXY.txt          the project, its extras cloud and test, and tools.in; not torch
#   torch-cuda-pyXY.txt   PyPI's torch 2.13.0 for Linux, a CUDA build, with its CUDA-only
#                         dependencies (nvidia-*, cuda-*; not triton): ~3 GB of downloads
#   labelstudio-pyXY.txt  the Label Studio server's own venv (.venv-labelstudio)
# and image-py311.txt: what the container image holds besides torch (the project, no extras);
# gpu-py311.txt: what its GPU variant adds (PyPI's CUDA torch, JAX with CUDA for Keras).
# and torch-cpu-py311.txt: PyTorch's CPU build of torch 2.13.0 for 3.11, by the hash of its wheel,
# resolved from pip's find-links (PIP_FIND_LINKS or pip's config) where that wheel lies.
# Only package names, versions and hashes are written: no index or find-links address.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
. scripts/uv-env.sh
if [ ! -x "$UV_TOOL/bin/uv" ] || [ "$("$UV_TOOL/bin/uv" --version | cut -d' ' -f2)" != "$uv_version" ]; then
    python3 -m venv "$UV_TOOL"
    "$UV_TOOL/bin/python" -m pip install -q "uv==$uv_version" >/dev/null 2>&1 \
        || { echo "lock: could not install uv==$uv_version with pip" >&2; exit 1; }
fi
uv="$UV_TOOL/bin/uv"
label_studio="$(sed -n 's/^VERSION = "\([^"]*\)".*/\1/p' usecases/stores/labelstudio.py)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
compile() {  # compile OUT PYTHON [uv pip compile arguments...]
    local out="$1" python="$2"
    shift 2
    "$uv" pip compile -q --generate-hashes --python-version "$python" \
        --python-platform x86_64-manylinux_2_28 --custom-compile-command scripts/lock.sh \
        -o "$out" "$@" "${UPGRADE[@]}"
}
UPGRADE=()
[ "${1:-}" = "--upgrade" ] && UPGRADE=(--upgrade)
# split IN CUDA REST [KNOWN]: torch and its CUDA-only dependencies into CUDA, the rest into REST;
# with KNOWN (a lock), only what KNOWN does not pin, all of it into CUDA
split() {
    python3 - "$@" <<'PY'
import re, sys
src, cuda, rest = sys.argv[1:4]
known = set(re.findall(r"^([A-Za-z0-9_.-]+)==", open(sys.argv[4]).read(), re.M)
            ) if len(sys.argv) > 4 else None
cuda_only = re.compile(r"^(torch|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==")
# triton, torch's compiler of GPU kernels, is left out: nothing here runs on a GPU, and on 3.12 the
# fast tests crashed (segfault) loading its C extension from torch.optim (torch._dynamo)
left_out = re.compile(r"^triton==")
header, blocks = [], []
for line in open(src):
    if re.match(r"[A-Za-z0-9]", line):
        blocks.append([line])
    elif blocks:
        blocks[-1].append(line)
    else:
        header.append(line)
with open(cuda, "w") as c, open(rest, "w") as r:
    c.writelines(header)
    r.writelines(header)
    for block in blocks:
        if left_out.match(block[0]):
            continue
        if known is None:
            (c if cuda_only.match(block[0]) else r).writelines(block)
        elif block[0].split("==")[0] not in known:
            c.writelines(block)
PY
}
printf '# written by scripts/lock.sh from VERSION in usecases/stores/labelstudio.py\nlabel-studio==%s\n-r tools.in\n' \
    "$label_studio" >requirements/labelstudio.in
for python in 3.11 3.12; do
    tag="py${python/./}"
    # Resolved with PyPI's (CUDA) torch, so that the rest holds every dependency of either build
    compile "$work/all-$tag.txt" "$python" pyproject.toml --extra cloud --extra test requirements/tools.in
    split "$work/all-$tag.txt" "requirements/torch-cuda-$tag.txt" "requirements/cdl-$tag.txt"
    compile "requirements/labelstudio-$tag.txt" "$python" requirements/labelstudio.in
done
# The container image (scripts/images.sh): the project without its extras, at the versions of
# cdl-py311.txt; torch comes from torch-cpu-py311.txt (CPU image) or torch-cuda-py311.txt (GPU)
compile "$work/image-py311.txt" 3.11 pyproject.toml -c requirements/cdl-py311.txt \
    -c requirements/torch-cuda-py311.txt
split "$work/image-py311.txt" "$work/image-torch.txt" "requirements/image-py311.txt"
# The image's GPU variant: PyPI's CUDA torch and, for Keras, JAX with CUDA 13 (the backend
# measured fastest on a GPU, benchmarks/fmnist_epoch.py; 0.10 is the last JAX for Python 3.11;
# CUDA 13 as torch 2.13, whose NVIDIA libraries it shares, and which still runs on a T4),
# minus what image-py311.txt pins already
compile "$work/gpu-all.txt" 3.11 requirements/gpu.in -c requirements/image-py311.txt \
    -c requirements/torch-cuda-py311.txt
split "$work/gpu-all.txt" requirements/gpu-py311.txt "$work/gpu-rest.txt" requirements/image-py311.txt
# The CPU build: only the wheel itself; its dependencies are pinned in cdl-py311.txt
if [ -z "$CDL_FIND_LINKS" ]; then
    echo "lock: pip has no find-links holding torch 2.13.0's CPU build; torch-cpu-py311.txt kept as it is" >&2
else
    find_links=()
    for dir in $CDL_FIND_LINKS; do find_links+=(--find-links "$dir"); done
    compile "$work/torch-cpu.txt" 3.11 requirements/torch.in -c requirements/cdl-py311.txt "${find_links[@]}"
    split "$work/torch-cpu.txt" "requirements/torch-cpu-py311.txt" "$work/torch-cpu-rest.txt"
    grep -q '^torch==2.13.0+cpu ' requirements/torch-cpu-py311.txt \
        || { echo "lock: find-links gave no CPU build of torch 2.13.0" >&2; exit 1; }
fi
if grep -l -E '(https?|file)://|--(index-url|extra-index-url|find-links)' requirements/*.txt; then
    echo "lock: a lock file names an index or a location (above); it must not" >&2
    exit 1
fi
lock_inputs python3 >requirements/inputs.sha256
echo "lock: requirements/ regenerated ($(cat requirements/*.txt | grep -cE '^[a-z0-9]') pins)"
