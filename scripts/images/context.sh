#!/bin/sh
# The build context of scripts/images/Containerfile, the same for both builders that use it:
# scripts/images.sh (Podman, on one machine) and the GitLab CI job of ci/image.yml (kaniko).
#   sh scripts/images/context.sh DIR TORCH_LOCK      run from the repository's root
# DIR (made if missing) gets:
#   Containerfile, image-py311.txt, TORCH_LOCK   the recipe and the locks it installs, by hash
#   uv/uv.txt     uv's block of requirements/cdl-py311.txt, by its hashes: the uv an online
#                 build installs (an offline build is given the venv's uv as uv/uv instead)
#   src/          the project: pyproject.toml and usecases/, and a stub README.md
# POSIX sh with busybox's tools only: kaniko's debug image has neither bash nor git.
set -eu
dir="${1:?usage: context.sh DIR TORCH_LOCK}"
torch_lock="${2:?usage: context.sh DIR TORCH_LOCK}"
mkdir -p "$dir/uv" "$dir/src"
cp scripts/images/Containerfile requirements/image-py311.txt "requirements/$torch_lock" "$dir/"
awk '/^[a-z0-9]/ { keep = /^uv==/ } keep' requirements/cdl-py311.txt >"$dir/uv/uv.txt"
grep -q '^uv==' "$dir/uv/uv.txt" || { echo "context: no uv pin in requirements/cdl-py311.txt" >&2; exit 1; }
# The files git tracks, where git is at hand (a working copy holds caches and experiments);
# in CI's fresh checkout without git, every file there is a tracked one
if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -c core.quotePath=false ls-files usecases pyproject.toml
else
    find usecases -type f ! -path '*/__pycache__/*'
    echo pyproject.toml
fi | while IFS= read -r file; do
    mkdir -p "$dir/src/$(dirname "$file")"
    cp "$file" "$dir/src/$file"
done
# the package's long description only (pyproject's readme): an edit of the README is no reason
# to build again
echo "CDL: see the README of its repository." >"$dir/src/README.md"
