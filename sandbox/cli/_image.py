"""`sandbox image build|ls`: argument parsing and rendering only.

Also runnable as `python -m sandbox.cli._image ...` (scripts/build-images.sh uses that, so
image builds do not depend on how the main parser is wired).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from sandbox.errors import SandboxError

IMAGE_EPILOG = """\
Images are built from Debian packages with debootstrap (no registry). Each build gives a rootfs
for the nsjail backend and, when a Docker daemon answers, the same tree as a Docker image
`sandbox/NAME:<content digest>`. `host` (the default) is the read-only host view: never built.
examples:
  sandbox image build debian-python            build (skipped when the definition is unchanged)
  sandbox image build --force debian-node      rebuild anyway
  sandbox image ls --json
store: $SANDBOX_IMAGES (default $SANDBOX_HOME/images); definitions: images/NAME.toml
"""


def add_image_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "image", help="build and list sandbox images", epilog=IMAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build hermetic images from Debian packages; list the built ones.")
    sub = p.add_subparsers(dest="image_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    b = sub.add_parser("build", help="debootstrap an image (and import it into Docker)")
    b.add_argument("names", nargs="+", metavar="NAME", help="definition name or .toml path")
    b.add_argument("--force", action="store_true", help="rebuild even when up to date")
    b.add_argument("--no-docker", action="store_true",
                   help="rootfs only; do not import into a Docker daemon")
    b.add_argument("--json", action="store_true", help="print the build records as JSON")
    ls = sub.add_parser("ls", help="list built images")
    ls.add_argument("--json", action="store_true")


def run_image(args: argparse.Namespace) -> int:
    match args.image_cmd:
        case "build":
            return _build(args)
        case "ls":
            return _ls(args)
        case _:
            print("sandbox image: expected build or ls (see `sandbox image --help`)",
                  file=sys.stderr)
            return 2


def _build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sandbox.images import ImageStore, build_image, ensure_docker_image, find_definition

    store = ImageStore.from_env()
    defs = [find_definition(n) for n in args.names]  # all names checked before any build
    client = None if args.no_docker else _docker_or_none()
    records = []
    for defn in defs:
        res = build_image(defn, store, force=args.force, log=_log)
        rec = res.record
        if client is not None:
            ref = ensure_docker_image(client, rec, store.rootfs(rec.name))
            if rec.docker_image != ref:
                rec = replace(rec, docker_image=ref)
                store.save(rec)
            _log(f"{rec.name}: docker image {ref}")
        records.append(rec.to_json() | {"cached": res.cached,
                                         "rootfs": str(store.rootfs(rec.name))})
    if args.json:
        print(json.dumps(records, indent=2))
    return 0


def _docker_or_none() -> Any:
    """A client when a daemon answers; otherwise say so and build the rootfs only."""
    from sandbox.backends._docker_client import connect

    try:
        return connect(timeout=600)
    except SandboxError as exc:
        _log(f"no Docker image this time: {exc}")
        return None


def _ls(args: argparse.Namespace) -> int:
    from sandbox.images import HOST_IMAGE, ImageStore

    store = ImageStore.from_env()
    recs = store.list()
    if args.json:
        print(json.dumps([r.to_json() | {"rootfs": str(store.rootfs(r.name))} for r in recs],
                         indent=2))
        return 0
    rows = [("NAME", "DIGEST", "SIZE", "BUILT", "DOCKER")]
    rows.append((HOST_IMAGE, "-", "-", "-", "(read-only host view, default)"))
    for r in recs:
        rows.append((r.name, r.digest[:19], f"{r.bytes / 2**20:.0f} MiB", r.built_at,
                     r.docker_image or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0


def _log(msg: str) -> None:
    print(f"sandbox image: {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox")
    add_image_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(argv)
    if args.cmd != "image":
        parser.print_usage(sys.stderr)
        return 2
    try:
        return run_image(args)
    except SandboxError as exc:
        print(f"sandbox: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
