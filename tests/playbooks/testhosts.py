"""Throwaway Debian 12 hosts for converge tests.

A debootstrap rootfs is built once and cached outside the repository, keyed by its recipe. Each
test host boots an overlay of it with systemd-nspawn inside a network namespace of our own, and
is reached over SSH as a sudo user with a key, the way Ansible reaches a cloud VM. The namespace
has one veth link to this machine and no route out: apt reaches the Debian mirror this machine
already uses through a small proxy on the host end of the link, which forwards only to that
mirror (and keeps the .deb files it fetched, so repeated runs do not download them again).

`python -m tests.playbooks.testhosts build` builds or refreshes the cache (scripts/testhosts.sh).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from usecases.ops import Result, run_playbook

CACHE = Path(os.environ.get("CDL_TESTHOSTS_CACHE", "/var/cache/cdl/testhosts"))
SUITE = "bookworm"
# What a Debian cloud image brings that Ansible relies on: Python, systemd, sshd, sudo.
PACKAGES = ("python3", "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "iproute2")
# Like a Debian cloud image: main only. The nvidia_driver role enables contrib and non-free.
COMPONENTS = ("main",)
USER = "debian"
PROXY_PORT = 3142
SSH_OPTIONS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
# Bump when _configure changes what the cached rootfs holds.
RECIPE_VERSION = 1
APT_SOURCES = Path("/etc/apt")


@dataclass(frozen=True)
class AptSource:
    uris: tuple[str, ...]
    suites: tuple[str, ...]


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    stanza: dict[str, str] = {}
    key = ""
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza = {}
        elif line[0].isspace() and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            stanza[key] = value.strip()
    return


def host_apt_sources(root: Path = APT_SOURCES) -> list[AptSource]:
    """The binary package sources this machine's apt reads (sources.list, .list and .sources)."""
    sources: list[AptSource] = []
    one_line = [root / "sources.list", *sorted((root / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if words[:1] != ["deb"]:
                continue
            words = [w for w in words[1:] if not w.startswith("[")]
            if len(words) >= 2:
                sources.append(AptSource((words[0],), (words[1],)))
    for path in sorted((root / "sources.list.d").glob("*.sources")):
        for stanza in _deb822_stanzas(path.read_text()):
            if "deb" not in stanza.get("types", "").split():
                continue
            if stanza.get("enabled", "yes").lower() == "no":
                continue
            sources.append(AptSource(tuple(stanza.get("uris", "").split()),
                                     tuple(stanza.get("suites", "").split())))
    return sources


def debian_sources(sources: list[AptSource]) -> list[AptSource]:
    """The sources that serve Debian 12 (bookworm, -updates, -security)."""
    chosen = [s for s in sources if any(suite.startswith(SUITE) for suite in s.suites)]
    if not any(SUITE in s.suites for s in chosen):
        raise RuntimeError(f"no apt source on this machine serves {SUITE}; test hosts need one")
    return chosen


def mirror(sources: list[AptSource]) -> str:
    return next(s.uris[0] for s in sources if SUITE in s.suites)


def cache_dir(sources: list[AptSource]) -> Path:
    recipe = json.dumps([SUITE, PACKAGES, COMPONENTS, USER, RECIPE_VERSION,
                         [[s.uris, s.suites] for s in sources]])
    return CACHE / hashlib.sha256(recipe.encode()).hexdigest()[:16]


def _sources_file(sources: list[AptSource]) -> str:
    stanzas = [f"Types: deb\nURIs: {' '.join(s.uris)}\nSuites: {' '.join(s.suites)}\n"
               f"Components: {' '.join(COMPONENTS)}\n"
               "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" for s in sources]
    return "\n".join(stanzas)


def _configure(root: Path, sources: list[AptSource]) -> None:
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(_sources_file(sources))
    subprocess.run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash",
                    USER], check=True)
    sudoers = root / "etc/sudoers.d/90-cloud-user"
    sudoers.write_text(f"{USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    # Every host gets its own host keys and machine id at first boot.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True)


def build_rootfs(force: bool = False) -> Path:
    """The cached pristine rootfs, built with debootstrap when missing (or when forced)."""
    sources = debian_sources(host_apt_sources())
    directory = cache_dir(sources)
    rootfs = directory / "rootfs"
    if (directory / "complete").exists() and not force:
        return rootfs
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / "rootfs.staging"
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                    SUITE, str(staging), mirror(sources)], check=True)
    _configure(staging, sources)
    (directory / "complete").unlink(missing_ok=True)
    shutil.rmtree(rootfs, ignore_errors=True)
    staging.rename(rootfs)
    (directory / "complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return rootfs


class _ProxyHandler(BaseHTTPRequestHandler):
    server: AptProxy
    protocol_version = "HTTP/1.1"
    FORWARDED = ("If-Modified-Since", "If-None-Match", "If-Range", "Range", "Cache-Control")
    RETURNED = ("Content-Type", "Last-Modified", "ETag", "Content-Range", "Accept-Ranges")

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.scheme != "http" or url.hostname is None or url.hostname not in self.server.allowed:
            self.send_error(403, "only the Debian mirror is reachable from test hosts")
            return
        cached = self.server.deb_cache(self.path) if url.path.endswith(".deb") else None
        if cached is not None and cached.exists() and "Range" not in self.headers:
            self._reply(200, {"Content-Type": "application/vnd.debian.binary-package"},
                        cached.read_bytes())
            return
        headers = {name: self.headers[name] for name in self.FORWARDED if name in self.headers}
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)
        try:
            target = url.path + (f"?{url.query}" if url.query else "")
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except OSError as error:
            self.send_error(502, str(error))
            return
        finally:
            connection.close()
        if cached is not None and response.status == 200:
            partial = cached.with_suffix(f".{threading.get_ident()}.part")
            partial.write_bytes(body)
            partial.rename(cached)
        self._reply(response.status, {name: response.headers[name] for name in self.RETURNED
                                      if response.headers[name]}, body)

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:  # noqa: N802
        host, _, port = self.path.rpartition(":")
        if host not in self.server.allowed:
            self.send_error(403, "only the Debian mirror is reachable from test hosts")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=120)
        except OSError as error:
            self.send_error(502, str(error))
            return
        self.send_response(200)
        self.end_headers()
        with upstream, selectors.DefaultSelector() as selector:
            selector.register(self.connection, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, self.connection)
            while True:
                for key, _ in selector.select(timeout=120):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        self.close_connection = True
                        return
                    key.data.sendall(data)


class AptProxy(ThreadingHTTPServer):
    """A forward proxy to the Debian mirror only, listening on a host end of a veth link."""

    daemon_threads = True

    def __init__(self, address: str, sources: list[AptSource], debs: Path) -> None:
        self.allowed = {urlsplit(uri).hostname for s in sources for uri in s.uris}
        self.debs = debs
        debs.mkdir(parents=True, exist_ok=True)
        super().__init__((address, PROXY_PORT), _ProxyHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def deb_cache(self, url: str) -> Path:
        return self.debs / (hashlib.sha256(url.encode()).hexdigest() + ".deb")

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


@dataclass
class TestHost:
    """One booted Debian 12 host: `start()` it, use `address`, always `stop()` it."""

    __test__ = False  # not a pytest test class
    name: str
    index: int
    workdir: Path
    public_key: str
    process: subprocess.Popen[bytes] | None = None
    proxy: AptProxy | None = None
    mounted: bool = False
    netns: str = field(init=False)

    def __post_init__(self) -> None:
        self.netns = f"cdl-{self.name}"

    @property
    def gateway(self) -> str:
        return f"10.231.{self.index}.1"

    @property
    def address(self) -> str:
        return f"10.231.{self.index}.2"

    @property
    def root(self) -> Path:
        return self.workdir / "merged"

    def start(self, rootfs: Path, sources: list[AptSource], timeout: float = 90) -> None:
        self._reap_leftover()
        self._network()
        self.proxy = AptProxy(self.gateway, sources, CACHE / "debs")
        for part in ("upper", "work", "merged"):
            (self.workdir / part).mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={rootfs},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
             str(self.root))
        self.mounted = True
        self._personalise()
        log = (self.workdir / "console.log").open("wb")
        self.process = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "--boot", "--quiet",
             f"--machine={self.name}", f"--directory={self.root}",
             f"--network-namespace-path=/run/netns/{self.netns}",
             # ufw needs netfilter and net sysctls, both scoped to the namespace.
             "--capability=CAP_NET_ADMIN"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._pidfile.parent.mkdir(parents=True, exist_ok=True)
        self._pidfile.write_text(str(self.process.pid))
        self._wait_for_ssh(timeout)

    @property
    def _pidfile(self) -> Path:
        return CACHE / "running" / f"{self.name}.pid"

    def _reap_leftover(self) -> None:
        """Kill this host's container from a run that was killed before it could clean up."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self._pidfile.read_text())
            if b"systemd-nspawn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)
        self._pidfile.unlink(missing_ok=True)

    def _network(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "netns", "delete", self.netns)  # left over from a killed run
        _run("ip", "netns", "add", self.netns)
        outside = f"cdlh{self.index}"
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "delete", outside)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0",
             "netns", self.netns)
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", outside)
        _run("ip", "link", "set", outside, "up")
        inside = ("ip", "netns", "exec", self.netns, "ip")
        _run(*inside, "addr", "add", f"{self.address}/24", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")
        _run(*inside, "link", "set", "lo", "up")

    def _personalise(self) -> None:
        """What cloud-init does on a VM: hostname, the user's key, the apt proxy."""
        etc = self.root / "etc"
        (etc / "hostname").write_text(f"{self.name}\n")
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n")
        (etc / "apt/apt.conf.d/01proxy").write_text(
            f'Acquire::http::Proxy "http://{self.gateway}:{PROXY_PORT}";\n'
            f'Acquire::https::Proxy "http://{self.gateway}:{PROXY_PORT}";\n')
        entry = next(line.split(":") for line in (etc / "passwd").read_text().splitlines()
                     if line.startswith(f"{USER}:"))
        ssh = self.root / "home" / USER / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(self.public_key)
        for path in (ssh, ssh / "authorized_keys"):
            os.chown(path, int(entry[2]), int(entry[3]))
        subprocess.run(["chroot", str(self.root), "ssh-keygen", "-A"], check=True,
                       capture_output=True)

    def _wait_for_ssh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited while booting:\n{self.console()}")
            with contextlib.suppress(OSError), socket.create_connection((self.address, 22), 1):
                return
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not open SSH in {timeout:.0f} s:\n{self.console()}")

    def console(self) -> str:
        path = self.workdir / "console.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        """Power off (kill after 30 s), unmount, delete the namespace; safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            # nspawn turns SIGTERM into an orderly shutdown of the container's systemd.
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
        self._pidfile.unlink(missing_ok=True)
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.mounted:
            subprocess.run(["umount", "--lazy", str(self.root)], check=False)
            self.mounted = False
        subprocess.run(["ip", "netns", "delete", self.netns], check=False, capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Fleet:
    """Booted hosts and an inventory that reaches them over SSH, as the stack's would."""

    hosts: dict[str, TestHost]
    inventory: Path
    key: Path

    def run(self, playbook: str, **options: Any) -> Result:
        return run_playbook(playbook, inventory=self.inventory, **options)

    def ssh(self, name: str, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", *SSH_OPTIONS.split(), "-o", "BatchMode=yes",
                               "-i", str(self.key), *extra,
                               f"debian@{self.hosts[name].address}", command],
                              capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def fleet(rootfs: Path, key: Path, workdir: Path, layout: Mapping[str, Sequence[str]],
          first_index: int, group_vars: Mapping[str, Any] | None = None) -> Iterator[Fleet]:
    """Boot one host per LAYOUT entry (name -> inventory groups); always tear them all down."""
    sources = debian_sources(host_apt_sources())
    hosts = {name: TestHost(name, first_index + i, workdir / name, key.with_suffix(".pub")
                            .read_text()) for i, name in enumerate(layout)}
    try:
        for host in hosts.values():
            host.start(rootfs, sources)
        groups: dict[str, Any] = {}
        for name, names in layout.items():
            for group in names:
                groups.setdefault(group, {"hosts": {}})["hosts"][name] = None
        inventory = workdir / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {
            "vars": {"ansible_user": "debian", "ansible_ssh_private_key_file": str(key),
                     "ansible_ssh_common_args": SSH_OPTIONS, **(group_vars or {})},
            "hosts": {name: {"ansible_host": host.address} for name, host in hosts.items()},
            "children": groups}}))
        yield Fleet(hosts, inventory, key)
    finally:
        for host in hosts.values():
            host.stop()


def main(argv: list[str]) -> int:
    if argv[:1] != ["build"]:
        print("usage: python -m tests.playbooks.testhosts build [--force]", file=sys.stderr)
        return 2
    print(build_rootfs(force="--force" in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
