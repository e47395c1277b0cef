#!/usr/bin/env bash
# Install gitlab-ci-local into the project's venv (.venv/bin/gitlab-ci-local), idempotently:
# the tests run .gitlab-ci.yml's pipelines with it, shell executor, in scratch clones. Its
# version (4.73.0: later ones need Node >= 22) and its dependencies are locked in
# scripts/gitlab-ci-local/package-lock.json; `npm ci` installs exactly those. It needs git and
# rsync (scripts/setup.sh installs rsync).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="$REPO/scripts/gitlab-ci-local"
DIR="$REPO/.venv/lib/gitlab-ci-local"
TARGET="$REPO/.venv/bin/gitlab-ci-local"
STAMP="$DIR/installed.sha256"

if [ -x "$TARGET" ] && [ -f "$STAMP" ] && (cd "$SOURCE" && sha256sum --check --status "$STAMP"); then
    exit 0
fi
if [ ! -d "$REPO/.venv/bin" ]; then
    echo "gitlab-ci-local.sh: no venv at $REPO/.venv; create it first (scripts/setup.sh)" >&2
    exit 1
fi
command -v npm >/dev/null || { echo "gitlab-ci-local.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
rm -rf "$DIR"
mkdir -p "$DIR"
cp "$SOURCE/package.json" "$SOURCE/package-lock.json" "$DIR/"
(cd "$DIR" && npm ci --silent --no-audit --no-fund >/dev/null) || {
    echo "gitlab-ci-local.sh: npm ci failed in $DIR; run it there to see why" >&2
    exit 1
}
ln -sfn ../lib/gitlab-ci-local/node_modules/.bin/gitlab-ci-local "$TARGET"
version="$("$TARGET" --version)"
[ "$version" = "$(sed -n 's/.*"gitlab-ci-local": "\([^"]*\)".*/\1/p' "$SOURCE/package.json")" ] || {
    echo "gitlab-ci-local.sh: $TARGET is version $version, not the locked one" >&2
    exit 1
}
(cd "$SOURCE" && sha256sum package.json package-lock.json) > "$STAMP"
echo "gitlab-ci-local.sh: installed gitlab-ci-local $version at $TARGET"
