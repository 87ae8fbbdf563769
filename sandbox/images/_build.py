"""Build an image: debootstrap a minimal Debian, trim what differs between builds, digest it.

A build runs in <store>/<NAME>/.build-<pid> and is moved into place only when complete, with
the record written last, so a build killed half-way leaves the previous image usable. Builds of
one name are serialised by a lock file; a build whose definition hash matches the record is
skipped (that is what makes CI reuse its cache).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sandbox.errors import EnforcementError, SandboxError
from sandbox.images._definition import ImageDefinition, effective_mirror
from sandbox.images._digest import tree_digest
from sandbox.images._store import RECORD_FILE, ROOTFS_DIR, ImageRecord, ImageStore

# Emptied after debootstrap: caches, logs, apt lists (they differ between builds and are
# useless in a read-only image), documentation and translations (size), the host's
# resolv.conf that debootstrap copies in (the sandbox has no network, and it names the host's
# resolver). Copyright files stay: they travel with the binaries.
_EMPTY_DIRS = (
    "var/cache/apt", "var/lib/apt/lists", "var/log", "var/cache/debconf", "var/cache/ldconfig",
    "usr/share/man", "usr/share/info", "usr/share/locale", "dev", "tmp", "run",
)
_REMOVE_FILES = ("etc/resolv.conf", "var/lib/dpkg/status-old", "var/lib/dpkg/diversions-old",
                 "var/lib/dpkg/statoverride-old", "etc/machine-id")
_ADD_DIRS = ("workspace", "proc", "sys", "dev", "tmp", "root", "run")
_HOSTNAME = b"sandbox\n"


@dataclass(frozen=True)
class BuildResult:
    record: ImageRecord
    cached: bool  # the definition was unchanged: nothing was rebuilt


Log = Callable[[str], None]


def build_image(defn: ImageDefinition, store: ImageStore, *, force: bool = False,
                log: Log | None = None) -> BuildResult:
    """Build (or reuse) the rootfs of `defn`. Needs root (debootstrap chroots and chowns)."""
    say = log or (lambda _msg: None)
    mirror = effective_mirror(defn)
    want = defn.definition_hash(mirror)
    image_dir = store.image_dir(defn.name)
    image_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    with _locked(store.root / f".{defn.name}.lock"):
        current = store.load(defn.name)
        if current is not None and current.definition_hash == want and not force:
            say(f"{defn.name}: up to date ({current.digest[:19]})")
            return BuildResult(record=current, cached=True)
        if os.geteuid() != 0:
            raise EnforcementError("building an image needs root (debootstrap)",
                                   hint=f"sudo sandbox image build {defn.name}")
        debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
        if not os.access(debootstrap, os.X_OK):
            raise EnforcementError("debootstrap is not installed",
                                   hint="apt-get install debootstrap")
        started = time.monotonic()
        build_dir = image_dir / f".build-{os.getpid()}"
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(mode=0o755)
        try:
            target = build_dir / ROOTFS_DIR
            say(f"{defn.name}: debootstrap {defn.suite} from {mirror}")
            _debootstrap(debootstrap, defn, mirror, target, store.root / ".debs",
                         image_dir / "build.log")
            trim(target)
            say(f"{defn.name}: digesting the rootfs")
            digest = tree_digest(target)
            rec = ImageRecord(
                name=defn.name, digest=digest.digest, definition_hash=want, suite=defn.suite,
                packages=defn.packages, installed=installed_packages(target),
                files=digest.files, bytes=digest.bytes,
                built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                build_seconds=round(time.monotonic() - started, 1), mirror=mirror,
            )
            # The old record goes first: a crash between the two steps must not leave a
            # record that describes another tree.
            (image_dir / RECORD_FILE).unlink(missing_ok=True)
            _swap_in(target, store.rootfs(defn.name), build_dir)
            store.save(rec)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
        say(f"{defn.name}: built {rec.digest} in {rec.build_seconds:g}s "
            f"({rec.files} files, {rec.bytes >> 20} MiB)")
        return BuildResult(record=rec, cached=False)


def _debootstrap(binary: str, defn: ImageDefinition, mirror: str, target: Path,
                 cache: Path, log_path: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True, mode=0o755)
    argv = [binary, f"--variant={defn.variant}", f"--components={','.join(defn.components)}",
            f"--cache-dir={cache}"]
    if defn.packages:
        argv.append(f"--include={','.join(defn.packages)}")
    argv += [defn.suite, str(target), mirror]
    # A fixed, minimal environment: the host's locale or proxy settings must not leak into
    # what gets installed.
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "DEBIAN_FRONTEND": "noninteractive", "SOURCE_DATE_EPOCH": "0"}
    with log_path.open("wb") as logf:
        proc = subprocess.run(argv, stdout=logf, stderr=subprocess.STDOUT, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-8:]
        raise SandboxError(f"debootstrap failed (exit {proc.returncode}):\n  "
                           + "\n  ".join(tail), hint=f"full log: {log_path}")


def trim(rootfs: Path) -> None:
    """Make the rootfs minimal and free of per-build or per-host data."""
    for rel in _EMPTY_DIRS:
        d = rootfs / rel
        if d.is_dir() and not d.is_symlink():
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    for rel in _REMOVE_FILES:
        (rootfs / rel).unlink(missing_ok=True)
    doc = rootfs / "usr/share/doc"
    if doc.is_dir():
        for pkg in doc.iterdir():
            if pkg.is_dir() and not pkg.is_symlink():
                for child in pkg.iterdir():
                    if child.name == "copyright":
                        continue
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
    for rel in _ADD_DIRS:
        (rootfs / rel).mkdir(exist_ok=True)
    os.chmod(rootfs / "tmp", 0o1777)
    (rootfs / "etc/hostname").write_bytes(_HOSTNAME)


def installed_packages(rootfs: Path) -> tuple[str, ...]:
    proc = subprocess.run(
        ["dpkg-query", f"--admindir={rootfs / 'var/lib/dpkg'}", "-W",
         "-f", "${Package}=${Version}\n"],
        capture_output=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return ()
    return tuple(sorted(ln for ln in proc.stdout.decode().splitlines() if ln))


def _swap_in(new: Path, dest: Path, build_dir: Path) -> None:
    """Replace dest by new; the old tree is moved aside first (a running sandbox may still
    use it through its open bind mounts) and deleted with the build dir."""
    if dest.exists():
        os.replace(dest, build_dir / "old-rootfs")
    os.replace(new, dest)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
