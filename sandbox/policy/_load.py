"""Load TOML policy layers and merge them, later layers only tighter, with provenance.

Layers in order: built-in defaults, org (/etc/sandbox/policy.toml or $SANDBOX_ORG_POLICY),
user ($XDG_CONFIG_HOME/sandbox/policy.toml), workspace (sandbox.toml in the real workspace),
--policy FILE, then flags. Built-in values are defaults, not ceilings: the first layer that sets
a field chooses freely; every later layer may only tighten it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sandbox.errors import CeilingError, PolicyError
from sandbox.policy._model import (
    SECRET_ENV_PATTERNS,
    EffectivePolicy,
    Level,
    Limits,
    Loosening,
    Policy,
    ReviewAuto,
)
from sandbox.policy._trust import Trust, layer_trust

ORG_LAYER = "org"


@dataclass(frozen=True)
class Layer:
    """One source of settings: a name for messages ("org", "workspace", "flags"), a label
    (the file path or the flag), the raw TOML-shaped data, and the text to locate lines in."""

    kind: str
    label: str
    data: Mapping[str, Any]
    text: str = ""
    trust: Trust = Trust.PERSON  # a repository's file may only tighten unless trusted


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size like 512m or 2g")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
        n = int(float(m.group(1)) * mult[m.group(2).lower()])
        if n > 0:
            return n
    raise ValueError("expected a size like 512m or 2g")


def parse_duration(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        mult = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        n = float(m.group(1)) * mult[m.group(2).lower() if m.group(2) else None]
        if n > 0:
            return n
    raise ValueError("expected a duration in seconds, or like 90s, 10m, 1h")


def _positive_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError("expected a positive integer")


def _positive_number(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError("expected a positive number")


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


def _str(value: object) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError("expected a non-empty string")


def _str_list(value: object) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ValueError("expected a list of strings")


def _level(value: object) -> Level:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4:
        return Level(value)
    raise ValueError("expected a level from 1 to 4")


def _env_names(value: object) -> tuple[str, ...]:
    names = _str_list(value)
    for n in names:
        if secret_env_name(n):
            raise ValueError(f"{n} looks like a secret; secrets are never passed from the host")
    return names


def secret_env_name(name: str) -> bool:
    return any(fnmatchcase(name.upper(), p) for p in SECRET_ENV_PATTERNS)


# How a later layer may change a field already set by an earlier one.
Combine = Callable[[Any, Any], Any]  # (previous, new) -> merged; raises _Loosen


class _Loosen(Exception):
    pass


def _tighten_min(prev: Any, new: Any) -> Any:
    if new > prev:
        raise _Loosen
    return new


def _tighten_bool(prev: bool, new: bool) -> bool:
    if new and not prev:
        raise _Loosen
    return new


def _tighten_true(prev: bool, new: bool) -> bool:
    """For switches where true is the stricter setting ([hide] git)."""
    if prev and not new:
        raise _Loosen
    return new


def _union(prev: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    return prev + tuple(x for x in new if x not in prev)


def _groups(prev: tuple[tuple[str, ...], ...], new: tuple[tuple[str, ...], ...]) -> Any:
    return prev + new


def _profile(prev: str, new: str) -> str:
    if new not in (prev, "strict"):
        raise _Loosen
    return new


def _usd(value: object) -> float:
    """2, 2.5, "2usd", "$2", "2 USD"."""
    text = str(value).strip().lower().removeprefix("$").removesuffix("usd").strip()
    if isinstance(value, bool) or not text:
        raise ValueError("expected an amount in USD, like 2, 2.5 or \"2usd\"")
    try:
        amount = float(text)
    except ValueError:
        raise ValueError("expected an amount in USD, like 2, 2.5 or \"2usd\"") from None
    if not amount >= 0 or amount == float("inf"):
        raise ValueError("expected an amount in USD >= 0")
    return amount


def _narrow(prev: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    """A later model list may only narrow: each of its globs within one of the earlier ones."""
    import fnmatch

    if prev and not all(any(fnmatch.fnmatchcase(n, p) for p in prev) for n in new):
        raise _Loosen
    return new


def _free(prev: Any, new: Any) -> Any:
    return new


@dataclass(frozen=True)
class _Field:
    table: str  # dotted TOML table ("" for top level)
    key: str
    attr: str  # dotted attribute path on Policy
    parse: Callable[[object], Any]
    combine: Combine
    org_only: bool = False
    org_pins: bool = False  # an org value is binding; other layers choose freely
    grants: bool = False  # a list whose items allow something: adding one loosens
    person_only: bool = False  # any value from an untrusted repository file loosens


FIELDS: tuple[_Field, ...] = (
    _Field("", "level", "level", _level, _tighten_min),
    _Field("run", "backend", "backend", _str, _free, org_pins=True),
    _Field("run", "profile", "profile", _str, _profile),
    _Field("run", "image", "image", _str, _free, org_pins=True),
    _Field("limits", "timeout", "limits.timeout_s", parse_duration, _tighten_min),
    _Field("limits", "memory", "limits.memory_bytes", parse_size, _tighten_min),
    _Field("limits", "cpus", "limits.cpus", _positive_number, _tighten_min),
    _Field("limits", "pids", "limits.pids", _positive_int, _tighten_min),
    _Field("limits", "write", "limits.write_bytes", parse_size, _tighten_min),
    _Field("limits", "output", "limits.output_bytes", parse_size, _tighten_min),
    _Field("hide", "paths", "hide", _str_list, _union),
    # hide .git whole: the sandbox then cannot read the history (secrets committed once)
    _Field("hide", "git", "hide_git", _bool, _tighten_true),
    _Field("hide", "except", "hide_except", _str_list, _union, grants=True),
    _Field("changes", "ignore", "changes_ignore", _str_list, _union),
    _Field("protect", "paths", "protected", _str_list, _union),
    _Field("protect", "allow_at_level4", "allow_at_level4", _str_list, _free, org_only=True),
    _Field("review.auto", "max_files", "review_auto.max_files", _positive_int, _tighten_min),
    _Field("review.auto", "max_lines", "review_auto.max_lines", _positive_int, _tighten_min),
    _Field("review.auto", "allow_paths", "review_auto.allow_paths",
           lambda v: (_str_list(v),), _groups),
    _Field("review.auto", "deny_paths", "review_auto.deny_paths", _str_list, _union),
    _Field("review.auto", "new_executables", "review_auto.new_executables", _bool, _tighten_bool),
    _Field("review.auto", "binaries", "review_auto.binaries", _bool, _tighten_bool),
    _Field("review.auto", "deletions", "review_auto.deletions", _bool, _tighten_bool),
    _Field("egress", "allow", "egress_allow", _str_list, _union, grants=True),
    _Field("egress", "ceiling", "egress_ceiling", _str_list, _free, org_only=True),
    _Field("egress", "allow_addresses", "egress_allow_addresses", _str_list, _union,
           grants=True),
    _Field("env", "pass", "env_pass", _env_names, _union, grants=True),
    _Field("llm", "enabled", "llm_enabled", _bool, _tighten_bool),
    # where prompts (the workspace's code) go: a repository may not choose it untrusted
    _Field("llm", "gateway", "llm_gateway", _str, _free, org_pins=True, person_only=True),
    _Field("llm", "budget", "llm_budget_usd", _usd, _tighten_min),
    _Field("llm", "models", "llm_models", _str_list, _narrow),
    _Field("trust", "workspaces", "trust_workspaces", _bool, _free, org_only=True),
)
_BY_KEY = {(f.table, f.key): f for f in FIELDS}
_TABLES = {f.table for f in FIELDS if f.table} | {"review"}


def read_layer(kind: str, path: Path, *, trust_home: Path | None = None) -> Layer:
    """Read one TOML file. Malformed TOML exits 2 naming the file and line. With
    `trust_home`, the file is a repository's: trusted only if its exact bytes were trusted."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise PolicyError(f"{path}: policy file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc}") from exc
    import tomllib  # only when a policy file exists

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: malformed TOML: {exc}") from exc
    trust = Trust.PERSON if trust_home is None else layer_trust(trust_home, path, raw)
    return Layer(kind=kind, label=str(path), data=data, text=text, trust=trust)


def _locate(layer: Layer, table: str, key: str) -> str:
    """'file:line' of `key` in `[table]` (best effort; TOML parsers keep no positions)."""
    current = ""
    for n, line in enumerate(layer.text.splitlines(), 1):
        s = line.strip()
        if s.startswith("[") and not s.startswith("[["):
            current = s.strip("[] ").replace('"', "")
        elif current == table and re.match(rf"{re.escape(key)}\s*=", s):
            return f"{layer.label}:{n}"
    return layer.label


def _flatten(layer: Layer) -> list[tuple[str, str, object]]:
    out: list[tuple[str, str, object]] = []

    def walk(prefix: str, data: Mapping[str, Any]) -> None:
        for k, v in data.items():
            table_key = (prefix, k)
            dotted = f"{prefix}.{k}" if prefix else k
            if table_key in _BY_KEY:
                out.append((prefix, k, v))
            elif isinstance(v, dict) and dotted in _TABLES:
                walk(dotted, v)
            else:
                where = _locate(layer, prefix, k)
                shown = f"[{prefix}] {k}" if prefix else k
                raise PolicyError(f"{where}: unknown policy field {shown!r}",
                                  hint="run `sandbox policy show` for the known fields")

    walk("", layer.data)
    return out


class Untrusted(StrEnum):
    """What merge does with an untrusted repository file that would loosen the policy."""

    REFUSE = "refuse"  # a run: stop with exit 2, listing every such field (PolicyError)
    IGNORE = "ignore"  # review, approve, policy show: apply only what tightens


def merge(layers: list[Layer], *, untrusted: Untrusted = Untrusted.REFUSE) -> EffectivePolicy:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    kinds: dict[str, str] = {}
    trusts: dict[str, Trust] = {}
    refused: list[Loosening] = []
    forbid = org_forbids_trust(layers) is not None
    for layer in layers:
        trust = Trust.UNTRUSTED if forbid and layer.trust is Trust.TRUSTED else layer.trust
        for table, key, raw in _flatten(layer):
            f = _BY_KEY[(table, key)]
            shown = f"{table}.{key}" if table else key
            where = _locate(layer, table, key) if layer.text else layer.label
            try:
                value = f.parse(raw)
            except ValueError as exc:
                raise PolicyError(f"{where}: field {shown!r}: {exc} (got {raw!r})") from exc
            if f.org_only and layer.kind != ORG_LAYER:
                raise PolicyError(f"{where}: field {shown!r} may only be set by the org policy")
            if trust is Trust.UNTRUSTED and (f.grants or f.attr not in values):
                # The built-in defaults are this file's ceiling, as every earlier layer is.
                prev = values.get(f.attr, _default(f.attr))
                if _loosens(f, prev, value):
                    refused.append(Loosening(shown, _show_new(f, prev, value), where,
                                             sources.get(f.attr, "built-in")))
                    continue
            if f.attr in values:
                if f.org_pins and kinds[f.attr] == ORG_LAYER and value != values[f.attr]:
                    raise CeilingError(
                        f"{where}: {shown} = {raw!r} conflicts with the org policy, which pins "
                        f"{shown} = {values[f.attr]!r} ({sources[f.attr]})")
                try:
                    value = f.combine(values[f.attr], value)
                except _Loosen:
                    raise CeilingError(
                        f"{where}: {shown} = {raw!r} would loosen the ceiling "
                        f"{shown} = {_show(values[f.attr])} set by {sources[f.attr]}",
                        hint="later policy layers and flags may only tighten") from None
            elif f.combine is _union:
                value = _union(_default(f.attr), value)
            values[f.attr] = value
            sources[f.attr] = where
            kinds[f.attr] = layer.kind
            trusts[f.attr] = trust
    if refused and untrusted is Untrusted.REFUSE:
        raise untrusted_error(refused, forbid)
    policy = _build(values)
    _check_egress_ceiling(policy, sources)
    return EffectivePolicy(policy=policy, sources=sources,
                           layers=tuple(layer.label for layer in layers),
                           kinds=kinds, trust={k: v.value for k, v in trusts.items()},
                           not_applied=tuple(refused))


def org_forbids_trust(layers: list[Layer]) -> str | None:
    """file:line of an org `trust.workspaces = false`, which makes every repository file
    untrusted whatever `sandbox trust` recorded; None when trusting is allowed."""
    for layer in layers:
        table = layer.data.get("trust") if layer.kind == ORG_LAYER else None
        if isinstance(table, dict) and table.get("workspaces") is False:
            return _locate(layer, "trust", "workspaces")
    return None


def _loosens(f: _Field, prev: Any, new: Any) -> bool:
    """Would `new` from a repository file loosen `prev` (an earlier layer's or the default)?"""
    if f.grants:
        return any(x not in prev for x in new)
    if f.person_only:
        return bool(new != prev)
    if prev is None or f.combine not in (_tighten_min, _tighten_bool, _tighten_true, _profile):
        return False  # no limit to loosen (None), or a field that is not a restriction
    try:
        f.combine(prev, new)
    except _Loosen:
        return True
    return False


def _show_new(f: _Field, prev: Any, new: Any) -> str:
    if f.grants:
        return "adds " + ", ".join(json.dumps(x) for x in new if x not in prev)
    return f"= {_show(new)} (yours: {_show(prev)})"


def untrusted_error(refused: list[Loosening], org_forbids: bool) -> PolicyError:
    files = sorted({r.where.rsplit(":", 1)[0] for r in refused})
    lines = [f"  {r.where}: {r.field} {r.change}" for r in refused]
    if org_forbids:
        hint = ("the org policy forbids trusting workspace policy (trust.workspaces = false): "
                "remove those fields, or ask for them in the org policy")
    else:
        hint = ("review the file, then trust it: " + "; ".join(
            f"sandbox trust {shlex.quote(f)}" for f in files) + " (or remove those fields)")
    return PolicyError(
        f"{', '.join(files)}: a repository's policy may only tighten yours unless you trust "
        f"it; not trusted, it would loosen:\n" + "\n".join(lines), hint=hint)


def field_rows(policy: Policy) -> list[tuple[str, Any, str]]:
    """(dotted TOML name, JSON-able value, attribute) of every policy field, in declaration
    order: what `policy show` prints (derived from FIELDS, so no field can be left out)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Level):
            return int(v)
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    rows = []
    for f in FIELDS:
        obj: Any = policy
        for part in f.attr.split("."):
            obj = getattr(obj, part)
        rows.append((f"{f.table}.{f.key}" if f.table else f.key, plain(obj), f.attr))
    return rows


def _show(value: Any) -> str:
    return str(int(value)) if isinstance(value, Level) else repr(value)


def _default(attr: str) -> Any:
    obj: Any = Policy()
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _build(values: Mapping[str, Any]) -> Policy:
    top = {k: v for k, v in values.items() if "." not in k}
    if top.get("hide_git"):
        top["hide"] = _union(top.get("hide", _default("hide")), (".git/",))
    limits = {k.split(".")[1]: v for k, v in values.items() if k.startswith("limits.")}
    review = {k.split(".")[1]: v for k, v in values.items() if k.startswith("review_auto.")}
    return replace(Policy(), **top, limits=replace(Limits(), **limits),
                   review_auto=replace(ReviewAuto(), **review))


def _check_egress_ceiling(policy: Policy, sources: Mapping[str, str]) -> None:
    """Every allowed host must lie within the org ceiling, judged by the egress rules the
    proxy itself uses (so the loader and the proxy can never disagree)."""
    if not policy.egress_allow and policy.egress_ceiling is None:
        return
    from sandbox.egress import EgressPolicy

    rules = EgressPolicy.from_strings(policy.egress_allow, ceiling=policy.egress_ceiling,
                                      allow_addresses=policy.egress_allow_addresses)
    rules.check_ceiling(sources.get("egress_ceiling", "the org policy"))


def standard_layers(workspace: Path | None, env: Mapping[str, str] | None = None,
                    policy_file: Path | None = None,
                    trust_home: Path | None = None) -> list[Layer]:
    """The file layers that exist, in order (flags are appended by the caller). The workspace's
    sandbox.toml and a --policy file inside the workspace are the repository's: their trust is
    looked up in `trust_home` (default: the state dir, $SANDBOX_HOME)."""
    env = os.environ if env is None else env
    if trust_home is None:
        from sandbox._home import sandbox_home

        trust_home = sandbox_home(env)
    layers: list[Layer] = []
    org = env.get("SANDBOX_ORG_POLICY") or "/etc/sandbox/policy.toml"
    if Path(org).is_file() or env.get("SANDBOX_ORG_POLICY"):
        layers.append(read_layer(ORG_LAYER, Path(org)))
    cfg_home = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", "~")).expanduser() / ".config")
    user = cfg_home / "sandbox" / "policy.toml"
    if user.is_file():
        layers.append(read_layer("user", user))
    if workspace is not None and (workspace / "sandbox.toml").is_file():
        layers.append(read_layer("workspace", workspace / "sandbox.toml", trust_home=trust_home))
    if policy_file is not None:
        inside = workspace is not None and policy_file.resolve().is_relative_to(workspace.resolve())
        layers.append(read_layer("--policy", policy_file,
                                 trust_home=trust_home if inside else None))
    return layers


def load_policy(workspace: Path | None, *, flags: Layer | None = None,
                policy_file: Path | None = None,
                env: Mapping[str, str] | None = None,
                untrusted: Untrusted = Untrusted.REFUSE,
                trust_home: Path | None = None) -> EffectivePolicy:
    layers = standard_layers(workspace, env, policy_file, trust_home)
    if flags is not None and flags.data:
        layers.append(flags)
    return merge(layers, untrusted=untrusted)
