# Sourced by scripts/setup.sh and scripts/lock.sh: points uv at what pip is configured with here,
# read at run time from the environment and pip's config (uv reads neither), so that no index,
# mirror or certificate is written into the repository:
#   SSL_CERT_FILE      from PIP_CERT or pip's `cert` (a machine's own CA bundle)
#   UV_DEFAULT_INDEX   from PIP_INDEX_URL or pip's `index-url` (a mirror of PyPI); else PyPI
#   CDL_FIND_LINKS     from PIP_FIND_LINKS or pip's `find-links`: only used to look for torch's
#                      CPU build (uv is never given pip's extra indexes)
#   UV_CACHE_DIR       /var/cache/cdl/uv where that can be written (root, as on CI): the wheels,
#                      ~3 GB of CUDA torch among them, survive a fresh clone; uv keys them by hash
# and sets uv_version (requirements/tools.in) and UV_TOOL, a venv of that uv for lock.sh.
pip_config() {  # pip_config KEY: the value pip's config gives KEY (any section), else nothing
    python3 -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'$/\1/p" | tail -1
}
uv_version="$(sed -n 's/^uv==\([^ ]*\).*/\1/p' "$REPO/requirements/tools.in")"
UV_TOOL="${XDG_CACHE_HOME:-$HOME/.cache}/cdl/uv-$uv_version"
if [ -z "${SSL_CERT_FILE:-}" ]; then
    cert="${PIP_CERT:-$(pip_config cert)}"
    if [ -n "$cert" ]; then export SSL_CERT_FILE="$cert"; fi
fi
if [ -z "${UV_DEFAULT_INDEX:-}${UV_INDEX_URL:-}" ]; then
    index="${PIP_INDEX_URL:-$(pip_config index-url)}"
    if [ -n "$index" ]; then export UV_DEFAULT_INDEX="$index"; fi
fi
CDL_FIND_LINKS="${PIP_FIND_LINKS:-$(pip_config find-links)}"
export UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
if [ -z "${UV_CACHE_DIR:-}" ] && mkdir -p /var/cache/cdl/uv 2>/dev/null && [ -w /var/cache/cdl/uv ]; then
    export UV_CACHE_DIR=/var/cache/cdl/uv
fi
# The digest of what the locks are made from (lock.sh records it in requirements/inputs.sha256;
# setup.sh refuses locks that no longer match pyproject.toml)
lock_inputs() {
    "${1:-python3}" - <<'PY' | sha256sum | cut -d' ' -f1
import json, re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
keys = ("dependencies", "optional-dependencies", "requires-python")
print(json.dumps({k: project["project"].get(k) for k in keys}, sort_keys=True))
print(open("requirements/tools.in").read())
print(re.search(r'^VERSION = "([^"]*)"', open("usecases/stores/labelstudio.py").read(), re.M)[1])
PY
}
