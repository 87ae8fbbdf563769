"""`sandbox gateway serve|reload|key|usage`: argument parsing and rendering only."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sandbox.errors import UsageError

GATEWAY_EPILOG = """\
examples:
  sandbox gateway serve --config /etc/sandbox/gateway.toml      foreground, loopback :8787
  sandbox gateway key create --budget 5 --ttl 24h --models 'claude-*' --label ci
  ANTHROPIC_BASE_URL=http://127.0.0.1:8787/anthropic ANTHROPIC_API_KEY=sk-sbx-... claude -p hi
  sandbox gateway usage --by model
config: --config, $SANDBOX_GATEWAY_CONFIG, $SANDBOX_HOME/gateway.toml, /etc/sandbox/gateway.toml
"""


def add_gateway_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gateway",
        help="LLM gateway: serve, virtual keys, usage",
        epilog=GATEWAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="An LLM gateway: provider keys stay here, clients get virtual keys with "
        "budgets; every call is audited.",
    )
    sub = p.add_subparsers(dest="gateway_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    s = sub.add_parser("serve", help="run the gateway in the foreground")
    s.add_argument("--config", metavar="FILE", help="gateway config (TOML)")
    s.add_argument("--listen", metavar="HOST:PORT", help="default 127.0.0.1:8787 (loopback)")
    s.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --listen (needs gateway.tls_cert/tls_key)",
    )
    sub.add_parser("reload", help="make the running gateway re-read its config (SIGHUP)")
    k = sub.add_parser("key", help="virtual keys: create, ls, revoke")
    ksub = k.add_subparsers(dest="key_cmd", metavar="SUBCOMMAND", parser_class=type(p))
    c = ksub.add_parser("create", help="mint a key; prints it alone on stdout (shown once)")
    c.add_argument("--budget", type=float, metavar="USD", help="spend limit in USD")
    c.add_argument("--ttl", metavar="DURATION", help="lifetime, e.g. 3600, 90m, 24h")
    c.add_argument("--models", nargs="+", default=[], metavar="GLOB", help="allowed models")
    c.add_argument("--label", metavar="TEXT")
    ls = ksub.add_parser("ls", help="list keys (ids, never the keys)")
    ls.add_argument("--json", action="store_true")
    r = ksub.add_parser("revoke", help="revoke a key by id")
    r.add_argument("id", metavar="ID")
    u = sub.add_parser("usage", help="calls, tokens and cost from the audit log")
    u.add_argument("--by", choices=("key", "session", "model", "day"), default="key")
    u.add_argument("--json", action="store_true")


def _home() -> Path:
    from sandbox._home import HomeLayout

    return HomeLayout.from_env().ensure().root


def run_gateway(args: argparse.Namespace) -> int:
    match args.gateway_cmd:
        case "serve":
            from sandbox.gateway import find_config
            from sandbox.gateway._serve import serve

            return serve(find_config(args.config), args.listen, args.allow_remote, _home())
        case "reload":
            from sandbox.gateway._serve import signal_reload

            pid = signal_reload(_home())
            print(f"sandbox gateway: asked pid {pid} to reload", file=sys.stderr)
            return 0
        case "key":
            return _key(args)
        case "usage":
            return _usage(args)
        case _:
            raise UsageError("usage: sandbox gateway serve|reload|key|usage (see --help)")


def _key(args: argparse.Namespace) -> int:
    from sandbox.gateway import KeyStore

    store = KeyStore.at_home(_home())
    match args.key_cmd:
        case "create":
            ttl = None
            if args.ttl is not None:
                from sandbox.policy._load import parse_duration

                try:
                    ttl = parse_duration(args.ttl)
                except ValueError as exc:
                    raise UsageError(f"--ttl {args.ttl!r}: {exc}") from exc
            if args.budget is not None and not args.budget >= 0:
                raise UsageError("--budget: expected a number of USD >= 0")
            secret, vk = store.create(label=args.label, budget_usd=args.budget, ttl_s=ttl, models=args.models)
            print(secret)
            print(f"sandbox gateway: created key {vk.id}", file=sys.stderr)
            return 0
        case "ls":
            now = time.time()
            keys = store.list()
            if args.json:
                print(json.dumps(store.listing(now), indent=2))
                return 0
            for k in keys:
                budget = "-" if k.budget_usd is None else f"${k.budget_usd:g}"
                spent = store.spent(f"key:{k.id}")
                print(
                    f"{k.id}  {k.status(now):8} spent ${spent:.4f} of {budget:8} "
                    f"models={','.join(k.models) or '*'}"
                    f"{' tools=' + ','.join(sorted(k.tools.allowed)) if k.tools else ''} "
                    f"{k.label or ''}".rstrip()
                )
            return 0
        case "revoke":
            vk = store.revoke(args.id)
            print(f"sandbox gateway: key {vk.id} revoked", file=sys.stderr)
            return 0
        case _:
            raise UsageError("usage: sandbox gateway key create|ls|revoke")


def _usage(args: argparse.Namespace) -> int:
    from sandbox._home import HomeLayout
    from sandbox.audit import AuditLog
    from sandbox.gateway._report import By, summarize

    rows = summarize(AuditLog(HomeLayout.from_env().audit).records(), By(args.by))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(
        f"{args.by.upper():24} {'CALLS':>6} {'INPUT':>10} {'OUTPUT':>10} {'CACHE_R':>10} "
        f"{'CACHE_W':>10} {'COST_USD':>12}"
    )
    for r in rows:
        print(
            f"{r.group:24} {r.calls:>6} {r.input_tokens:>10} {r.output_tokens:>10} "
            f"{r.cache_read_tokens:>10} {r.cache_write_tokens:>10} {r.cost_usd:>12.6f}"
        )
    return 0
