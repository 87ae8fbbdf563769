"""`sandbox serve` and `sandbox serve token ...`: argument parsing and rendering only."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SERVE_EPILOG = """\
examples:
  sandbox serve                                  unix socket $SANDBOX_HOME/serve/serve.sock (owner only)
  sandbox serve --listen 127.0.0.1:8790          loopback TCP: every request needs a token
  sandbox serve --forward syslog: --forward otlp+http://collector:4318
  sandbox audit --verify --pubkey audit-key.pub  check the log against the key serve signs with
the audit signing key: --audit-key, default $SANDBOX_HOME/serve/audit-key (0600; see README)
"""


def add_serve_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="control plane: console, API, MCP, gateway; signs the audit log",
        epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="One long-running process: the web console at /, the JSON API under "
        "/api/v1/, MCP over streamable HTTP at /mcp/ID, the LLM gateway at /llm (when "
        "configured) and /metrics. It holds the audit signing key: it checks and signs the "
        "head of the audit log as records arrive and forwards them off the host.")
    p.add_argument("--listen", metavar="unix:PATH|HOST:PORT",
                   help="default unix:$SANDBOX_HOME/serve/serve.sock")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --listen (needs --tls-cert and --tls-key)")
    p.add_argument("--tls-cert", metavar="FILE")
    p.add_argument("--tls-key", metavar="FILE")
    p.add_argument("--audit-key", metavar="FILE", help="ed25519 signing key (PEM), created 0600 "
                   "if missing; default $SANDBOX_HOME/serve/audit-key")
    p.add_argument("--forward", action="append", default=[], metavar="TARGET",
                   help="copy each record as it is checked to syslog:[PATH], "
                   "syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT or otlp+http://HOST:PORT "
                   "(repeatable)")
    p.add_argument("--gateway-config", metavar="FILE", help="host the LLM gateway at /llm "
                   "(default: when $SANDBOX_GATEWAY_CONFIG, $SANDBOX_HOME/gateway.toml or "
                   "/etc/sandbox/gateway.toml exists)")
    p.add_argument("--checkpoint-interval", type=float, default=1.0, metavar="S",
                   help="how often new records are checked and signed (default 1s)")
    sub = p.add_subparsers(dest="serve_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    t = sub.add_parser("token", help="people's tokens: create, ls, revoke")
    tsub = t.add_subparsers(dest="token_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    c = tsub.add_parser("create", help="mint a token; printed once on stdout, stored hashed")
    c.add_argument("--name", required=True, help="the person's name, recorded with decisions")
    c.add_argument("--role", required=True, choices=("viewer", "reviewer", "admin"),
                   help="viewer reads; reviewer also decides; admin also manages")
    ls = tsub.add_parser("ls", help="list tokens (ids, names, roles; never the tokens)")
    ls.add_argument("--json", action="store_true")
    r = tsub.add_parser("revoke", help="revoke a token by id")
    r.add_argument("id", metavar="ID")


def _token(args: argparse.Namespace) -> int:
    import json
    import sys

    from sandbox._home import HomeLayout
    from sandbox.errors import UsageError
    from sandbox.server._serve import token_store
    from sandbox.server._tokens import Role

    store = token_store(HomeLayout.from_env().ensure())
    match args.token_cmd:
        case "create":
            token, secret = store.create(args.name, Role(args.role))
            print(secret)
            print(f"sandbox serve: token {token.id} for {token.name} ({token.role}); it is "
                  "shown only now", file=sys.stderr)
        case "ls":
            rows = store.list()
            if args.json:
                print(json.dumps([{"id": t.id, "name": t.name, "role": str(t.role),
                                   "created": t.created} for t in rows], indent=2))
            for t in [] if args.json else rows:
                print(f"{t.id}  {t.role:<8}  {t.created[:19]}  {t.name}")
        case "revoke":
            gone = store.revoke(args.id)
            print(f"revoked {gone.id} ({gone.name})")
        case _:
            raise UsageError("usage: sandbox serve token create|ls|revoke ...")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from sandbox._home import HomeLayout
    from sandbox.errors import UsageError
    from sandbox.server._serve import ServeOptions, serve

    if args.serve_cmd == "token":
        return _token(args)
    if not 0.05 <= args.checkpoint_interval <= 3600:
        raise UsageError("--checkpoint-interval must be between 0.05 and 3600 seconds")
    opts = ServeOptions(
        listen=args.listen, allow_remote=args.allow_remote,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        audit_key=Path(args.audit_key) if args.audit_key else None,
        forward=tuple(args.forward), interval=args.checkpoint_interval,
        gateway_config=Path(args.gateway_config) if args.gateway_config else None)
    return serve(opts, HomeLayout.from_env().ensure())
