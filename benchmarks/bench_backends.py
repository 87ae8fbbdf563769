"""Per-call overhead of each backend, against a plain `docker run` measured in the same run.

    .venv/bin/python benchmarks/bench_backends.py [--n 20] [--json out.json]

Needs root, a Docker daemon (scripts/dockerd.sh) and the debian-python image (built here when
missing; scripts/build-images.sh caches it). Rows, all running `true`:
  sandbox run (CLI), nsjail / docker    the whole `sandbox run`: policy, snapshot, launch, diff,
                                        audit (host view, the default image)
  launch, nsjail / docker               the backend alone (LaunchSpec -> LaunchResult) on the
                                        debian-python image
  docker run --rm (CLI)                 the peer: docker's own CLI, same image, --network none
  docker API create/start/wait/rm       the floor for any backend that goes through the daemon
Reports medians and ratios to `docker run`; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VENV_BIN = Path(sys.executable).parent
IMAGES = Path(os.environ.get("SANDBOX_IMAGES", "/var/cache/sandbox/images"))
PEER = "docker run --rm (CLI)"

from _timing import median_ms  # noqa: E402 (benchmarks/ is sys.path[0])


def quiet(argv: list[str], env: dict[str, str] | None = None) -> None:
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                       check=False)
    if r.returncode != 0:
        raise SystemExit(f"benchmark step failed: {argv}: {r.stderr.decode()[-500:]}")


def _bind(fn: Callable[[list[str], dict[str, str]], None], argv: list[str],
          env: dict[str, str]) -> Callable[[], None]:
    return lambda: fn(argv, env)


def image_rootfs() -> tuple[Path, str]:
    from sandbox.images import ImageStore, build_image, find_definition

    store = ImageStore(IMAGES)
    rec = store.load("debian-python") or build_image(find_definition("debian-python"),
                                                     store).record
    return store.rootfs(rec.name), rec.docker_tag


def cli_rows(n: int, base: Path) -> dict[str, float]:
    ws = base / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("bench\n")
    out = {}
    for backend in ("nsjail", "docker"):
        org = base / f"org-{backend}.toml"
        org.write_text(f'[run]\nbackend = "{backend}"\n')
        env = dict(os.environ, SANDBOX_HOME=str(base / f"home-{backend}"),
                   SANDBOX_ORG_POLICY=str(org))
        argv = [str(VENV_BIN / "sandbox"), "run", "-C", str(ws), "--level", "4", "--", "true"]
        out[f"sandbox run (CLI), {backend}"] = median_ms(_bind(quiet, argv, env), n)
    return out


def launch_rows(n: int, base: Path, rootfs: Path) -> dict[str, float]:
    from sandbox.seccomp import load_for_run

    seccomp = load_for_run(None, cache_dir=base / "cache")
    ws = base / "lws"
    ws.mkdir()
    out = {}
    for name in ("nsjail", "docker"):
        out[f"launch, {name}"] = median_ms(_launcher(name, base, ws, rootfs, seccomp), n)
    return out


def _launcher(name: str, base: Path, ws: Path, rootfs: Path,
              seccomp: object) -> Callable[[], None]:
    """One fresh snapshot per call, as a run gets: the backend alone is timed."""
    from sandbox.backends import LaunchSpec, Seccomp, Snapshot, get_backend
    from sandbox.backends._mountns import MAPPED_ROOT_ID

    assert isinstance(seccomp, Seccomp)
    backend = get_backend(name, capture=True)
    count = iter(range(1 << 30))

    def once() -> None:
        d = base / f"{name}-{next(count)}"
        for sub in ("upper", "work", "mask"):
            (d / sub).mkdir(parents=True)
        os.chown(d / "upper", MAPPED_ROOT_ID, MAPPED_ROOT_ID)
        spec = LaunchSpec(argv=("true",), scratch=d / "scratch", env={"PATH": "/usr/bin"},
                          snapshot=Snapshot(lower=ws, upper=d / "upper", work=d / "work",
                                            mask=d / "mask"),
                          seccomp=seccomp, image_root=rootfs)
        res = backend.launch(spec)
        if res.exit_code != 0:
            raise SystemExit(f"{name} launch failed: {res}")

    return once


def docker_rows(n: int, tag: str) -> dict[str, float]:
    from sandbox.backends._docker_client import connect

    client = connect()

    def api_run() -> None:
        c = client.api.create_container(tag, ["true"], network_disabled=True,
                                        host_config=client.api.create_host_config(
                                            network_mode="none"))
        client.api.start(c["Id"])
        client.api.wait(c["Id"])
        client.api.remove_container(c["Id"], force=True)

    return {
        PEER: median_ms(lambda: quiet(["docker", "run", "--rm", "--network", "none", tag,
                                       "true"]), n),
        "docker API create/start/wait/rm": median_ms(api_run, n),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args()
    from sandbox.backends._docker_client import connect
    from sandbox.errors import SandboxError

    # Skipped, not failed, without its prerequisites: benchmarks/run.sh runs every bench.
    if os.geteuid() != 0:
        print("bench_backends: skipped: needs root (the docker backend stages overlays as "
              "root)", file=sys.stderr)
        return 0
    try:
        connect(timeout=5).close()
    except SandboxError as exc:
        print(f"bench_backends: skipped: {exc}", file=sys.stderr)
        return 0
    rootfs, tag = image_rootfs()
    from sandbox.images import ImageStore, ensure_docker_image, record_for_rootfs

    rec = record_for_rootfs(rootfs)
    assert rec is not None
    ensure_docker_image(connect(), rec, ImageStore(IMAGES).rootfs(rec.name))
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        base = Path(tmp)
        rows = {**docker_rows(args.n, tag), **cli_rows(args.n, base),
                **launch_rows(args.n, base, rootfs)}
    peer = rows[PEER]
    print(f"per-call overhead of `true`, median of {args.n} (image {rec.name} "
          f"{rec.digest[:19]}; docker {_docker_version()})\n")
    print("| what | median ms | ratio to `docker run` |")
    print("|---|---:|---:|")
    for k, v in rows.items():
        print(f"| {k} | {v:.1f} | {v / peer:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"n": args.n, "image": rec.digest, "docker": _docker_version(),
             "median_ms": rows, "ratio_to_docker_run": {k: v / peer for k, v in rows.items()}},
            indent=2) + "\n")
    return 0


def _docker_version() -> str:
    r = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                       capture_output=True, check=False)
    return r.stdout.decode().strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
