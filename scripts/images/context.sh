#!/bin/sh
# The build context of scripts/images/Containerfile, the same for both builders that use it:
# scripts/images.sh (Podman, on one machine) and the GitLab CI job of ci/image.yml (kaniko).
#   sh scripts/images/context.sh DIR TORCH_LOCK [HELM]      run from the repository's root
# DIR (made if missing) gets:
#   Containerfile, image-py311.txt, TORCH_LOCK   the recipe and the locks it installs, by hash
#   uv/uv.txt     uv's block of requirements/cdl-py311.txt, by its hashes: the uv an online
#                 build installs (an offline build is given the venv's uv as uv/uv instead)
#   src/          the project: pyproject.toml and usecases/, and a stub README.md
#   helm/helm     HELM (default .venv/bin/helm, where scripts/helm.sh installs it): the smoke
#                 installs the model releases with it. Refused unless it is the helm whose
#                 sha256 scripts/helm.sh pins, so that every image carries the same one
#   charts/cdl-model/   the chart of those releases
# POSIX sh with busybox's tools only: kaniko's debug image has neither bash nor git.
set -eu
dir="${1:?usage: context.sh DIR TORCH_LOCK [HELM]}"
torch_lock="${2:?usage: context.sh DIR TORCH_LOCK [HELM]}"
helm="${3:-.venv/bin/helm}"
pinned="$(sed -n 's/^HELM_SHA256="\([0-9a-f]*\)"$/\1/p' scripts/helm.sh)"
[ -f "$helm" ] || { echo "context: no helm at $helm; run scripts/helm.sh, or pass its path" >&2; exit 1; }
[ "$(sha256sum "$helm" | cut -d' ' -f1)" = "$pinned" ] || {
    echo "context: $helm is not the helm scripts/helm.sh pins (sha256 $pinned); run scripts/helm.sh" >&2
    exit 1; }
mkdir -p "$dir/uv" "$dir/src" "$dir/helm"
cp "$helm" "$dir/helm/helm"
chmod 0755 "$dir/helm/helm"
cp scripts/images/Containerfile requirements/image-py311.txt "requirements/$torch_lock" "$dir/"
awk '/^[a-z0-9]/ { keep = /^uv==/ } keep' requirements/cdl-py311.txt >"$dir/uv/uv.txt"
grep -q '^uv==' "$dir/uv/uv.txt" || { echo "context: no uv pin in requirements/cdl-py311.txt" >&2; exit 1; }
# The files git tracks, where git is at hand (a working copy holds caches and experiments);
# in CI's fresh checkout without git, every file there is a tracked one
tracked() {
    if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -c core.quotePath=false ls-files "$@"
    else
        for path in "$@"; do
            if [ -d "$path" ]; then find "$path" -type f ! -path '*/__pycache__/*'; else echo "$path"; fi
        done
    fi
}
copy() {
    while IFS= read -r file; do
        mkdir -p "$1/$(dirname "$file")"
        cp "$file" "$1/$file"
    done
}
tracked usecases pyproject.toml | copy "$dir/src"
tracked charts/cdl-model | copy "$dir"
[ -f "$dir/charts/cdl-model/Chart.yaml" ] || { echo "context: no charts/cdl-model/Chart.yaml" >&2; exit 1; }
# the package's long description only (pyproject's readme): an edit of the README is no reason
# to build again
echo "CDL: see the README of its repository." >"$dir/src/README.md"
