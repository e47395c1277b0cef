"""Scan a container image's files for secrets: what scripts/images.sh runs after each build.

Reads the image's filesystem as a tar stream (``podman export`` of a container made from it,
never started) and fails on any regular file that holds:

- a private key (a PEM ``PRIVATE KEY`` block, an OpenSSH key);
- a token of a known shape (GitLab personal, runner and deploy tokens; AWS access key ids);
- the content of a secret of this checkout: the files under ``CDL_HOME/secrets`` (generated
  credentials) and the private keys under the repository (the test hosts' SSH keys), each by
  its exact bytes;
- or that lies where no file of ours belongs (``.git``, a ``.cdl`` state folder, ``.venv``).

Usage: ``python scripts/images/scan.py IMAGE [--repo DIR] [--home DIR]``; exit 1 listing the
findings (path and kind, never the secret itself), 0 with a one-line summary.

Packages that ship private keys of their own for their tests are no secret of ours; the ones
found in our image are listed in ``ALLOWED`` with why.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

PATTERNS = {
    # a whole key: the header, optional PEM headers, then a line of key material (code that
    # parses keys names the header alone)
    "private key": re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\r?\n"
                              rb"(?:[A-Za-z-]+: [^\n]*\n)*\r?\n?[A-Za-z0-9+/]{60,}"),
    "GitLab token": re.compile(rb"\bgl(?:pat|rt|dt|ptt|ft|cbt)-[A-Za-z0-9_-]{20,}"),
    # AWS's documentation uses ids ending in EXAMPLE (botocore ships its examples)
    "AWS access key id": re.compile(rb"\b(?:AKIA|ASIA)(?![0-9A-Z]{9}EXAMPLE)[0-9A-Z]{16}\b"),
}
FORBIDDEN_PARTS = {".git", ".cdl", ".venv"}
# (path prefix in the image, why it is allowed), from what a scan of our image found.
ALLOWED: tuple[tuple[str, str], ...] = (
    ("/opt/cdl/lib/python3.11/site-packages/gevent/tests/",
     "gevent's own test certificates and keys, shipped in its wheel; no service uses them"),
    ("/usr/lib/x86_64-linux-gnu/libgnutls.so.",
     "GnuTLS' built-in FIPS self-test keys, compiled into Debian's libgnutls30"),
)
MIN_SECRET_BYTES = 12  # shorter "secrets" would match by chance


def known_secrets(repo: Path, home: Path) -> dict[bytes, str]:
    """The exact bytes of every secret this checkout holds, by where it is (for the report)."""
    found: dict[bytes, str] = {}
    candidates = list((home / "secrets").rglob("*")) if (home / "secrets").is_dir() else []
    for root, dirs, names in os.walk(repo):
        # the venvs and git's objects hold no secret of ours, and are most of the files
        dirs[:] = [d for d in dirs if not d.startswith((".venv", ".git", "node_modules"))]
        candidates += [Path(root) / n for n in names
                       if n.startswith("id_") or n.endswith((".key", ".pem"))]
    for path in candidates:
        if not path.is_file():
            continue
        data = path.read_bytes().strip()
        if len(data) >= MIN_SECRET_BYTES and (path.parent.name == "secrets"
                                              or PATTERNS["private key"].search(data)):
            found[data] = str(path)
    return found


def image_files(image: str) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every regular file of the image."""
    container = subprocess.run(["podman", "create", "--network=none", image, "true"],
                               capture_output=True, text=True, check=True).stdout.strip()
    try:
        with subprocess.Popen(["podman", "export", container], stdout=subprocess.PIPE) as export:
            assert export.stdout is not None
            with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
                for member in tar:
                    if member.isfile():
                        handle = tar.extractfile(member)
                        if handle is not None:
                            yield member.name, handle.read()
        if export.returncode:
            raise SystemExit(f"scan: podman export of {image} failed")
    finally:
        subprocess.run(["podman", "rm", "-f", container], capture_output=True, check=False)


def scan(image: str, secrets: dict[bytes, str]) -> tuple[int, list[str]]:
    files, findings = 0, []
    for name, data in image_files(image):
        files += 1
        path = "/" + name.lstrip("./")
        if any(path.startswith(prefix) for prefix, _ in ALLOWED):
            continue
        if FORBIDDEN_PARTS & set(Path(path).parts):
            findings.append(f"{path}: a file of a checkout or a state folder")
        for kind, pattern in PATTERNS.items():
            if pattern.search(data):
                findings.append(f"{path}: {kind}")
        for secret, source in secrets.items():
            if secret in data:
                findings.append(f"{path}: the content of {source}")
    return files, findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    parser.add_argument("--home", type=Path, default=None,
                        help="the state folder (default CDL_HOME, else REPO/.cdl)")
    args = parser.parse_args()
    home = args.home or Path(os.environ.get("CDL_HOME") or args.repo / ".cdl")
    secrets = known_secrets(args.repo, home)
    files, findings = scan(args.image, secrets)
    if findings:
        print(f"scan: {args.image}: {len(findings)} finding(s) in {files} files:",
              file=sys.stderr)
        for finding in findings:
            print(f"  {finding}", file=sys.stderr)
        return 1
    print(f"scan: {args.image}: no secret in {files} files (patterns: "
          f"{', '.join(PATTERNS)}; {len(secrets)} secret(s) of this checkout compared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
