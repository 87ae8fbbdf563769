"""The gateway's configuration: providers, routes, prices, budgets, limits, content policy.

Loaded from TOML (see README "LLM gateway" for every key) and validated whole at start-up, so a
bad file stops `gateway serve` with exit 2 and one clear line, before anything listens. Upstream
credentials are read here (from an environment variable or a 0600 file) and held only in
`Provider.secret`, whose repr never shows them.
"""

from __future__ import annotations

import fnmatch
import math
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.errors import UsageError

if TYPE_CHECKING:
    from sandbox.gateway._cloud import BedrockAuth, VertexAuth

__all__ = [
    "ApiFamily",
    "Config",
    "ConfigError",
    "ContentMode",
    "Limits",
    "Price",
    "Provider",
    "ProviderType",
    "find_config",
    "load_config",
    "parse_config",
]

DEFAULT_LISTEN = "127.0.0.1:8787"


class ConfigError(UsageError):
    """The gateway config is malformed, names an unknown provider type or an unreadable key."""


class ApiFamily(StrEnum):
    """The wire protocol a client speaks to us; routes pick providers that speak it too."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"


class ProviderType(StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    AZURE_OPENAI = "azure-openai"
    BEDROCK = "bedrock"
    VERTEX = "vertex"
    OPENAI_COMPATIBLE = "openai-compatible"

    @property
    def family(self) -> ApiFamily:
        match self:
            case ProviderType.ANTHROPIC | ProviderType.BEDROCK | ProviderType.VERTEX:
                return ApiFamily.ANTHROPIC
            case ProviderType.OPENAI | ProviderType.AZURE_OPENAI | ProviderType.OPENAI_COMPATIBLE:
                return ApiFamily.OPENAI


class ContentMode(StrEnum):
    BLOCK = "block"
    REDACT = "redact"
    OFF = "off"


@dataclass(frozen=True)
class Provider:
    name: str
    type: ProviderType
    base_url: str
    # The upstream credential; repr=False keeps it out of every log line and traceback.
    secret: str | None = field(default=None, repr=False)
    api_version: str | None = None  # azure-openai
    # bedrock: the model's Bedrock id per model name (default: the name itself)
    model_ids: Mapping[str, str] = field(default_factory=dict)
    # bedrock / vertex: how requests are signed or authorized (see _cloud)
    auth: BedrockAuth | VertexAuth | None = field(default=None, repr=False, compare=False)

    @property
    def family(self) -> ApiFamily:
        return self.type.family

    def credential_values(self) -> tuple[str, ...]:
        """Every credential value this provider holds (for the content scanner)."""
        values = [self.secret] if self.secret else []
        if self.auth is not None:
            values.append(self.auth.secret())
        return tuple(values)


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    @property
    def read_rate(self) -> float:
        return self.input if self.cache_read is None else self.cache_read

    @property
    def write_rate(self) -> float:
        return self.input if self.cache_write is None else self.cache_write


@dataclass(frozen=True)
class Limits:
    """Per-key rate limits (None: unlimited)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_streams: int | None = None


@dataclass(frozen=True)
class Config:
    source: Path | None
    listen: str = DEFAULT_LISTEN
    allow_remote: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_unpriced: bool = False
    default_max_tokens: int = 4096
    content: ContentMode = ContentMode.BLOCK
    providers: Mapping[str, Provider] = field(default_factory=dict)
    routes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    prices: tuple[tuple[str, Price], ...] = ()
    budget_session: float | None = None
    budget_day: float | None = None
    budget_month: float | None = None
    limits: Limits = Limits()

    def route(self, model: str, family: ApiFamily) -> tuple[Provider, ...]:
        """The providers for `model` that speak `family`, in fallback order (first glob wins)."""
        for pattern, names in self.routes:
            if fnmatch.fnmatchcase(model, pattern):
                found = tuple(self.providers[n] for n in names if self.providers[n].family == family)
                if found:
                    return found
        return ()

    def price(self, model: str) -> Price | None:
        """An exact name wins over globs; among globs the first listed (config before shipped)."""
        for pattern, price in self.prices:
            if pattern == model:
                return price
        for pattern, price in self.prices:
            if fnmatch.fnmatchcase(model, pattern):
                return price
        return None

    def secrets(self) -> tuple[str, ...]:
        """Every upstream credential value: the content scanner refuses to send them anywhere."""
        return tuple(v for p in self.providers.values() for v in p.credential_values())


def find_config(explicit: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """--config, $SANDBOX_GATEWAY_CONFIG, $SANDBOX_HOME/gateway.toml, /etc/sandbox/gateway.toml."""
    from sandbox._home import sandbox_home

    environ: Mapping[str, str] = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if environ.get("SANDBOX_GATEWAY_CONFIG"):
        return Path(environ["SANDBOX_GATEWAY_CONFIG"])
    for candidate in (sandbox_home(environ) / "gateway.toml", Path("/etc/sandbox/gateway.toml")):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate `path` (None: no providers, shipped prices only)."""
    if path is None:
        return parse_config({}, None, env)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"gateway config {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"gateway config {path}: {exc}") from exc
    return parse_config(raw, path, env)


def _shipped_prices() -> dict[str, object]:
    text = resources.files("sandbox.gateway").joinpath("prices.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


class _Reader:
    """Typed access to one TOML table; every error names the file and the dotted key."""

    def __init__(self, table: Mapping[str, object], where: str, known: frozenset[str]) -> None:
        self.table, self.where = table, where
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")

    def _get(self, key: str, kinds: tuple[type, ...], what: str) -> object:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(f"{self.where}.{key}: expected {what}")
        if not isinstance(value, kinds):
            raise ConfigError(f"{self.where}.{key}: expected {what}")
        return value

    def text(self, key: str) -> str | None:
        v = self._get(key, (str,), "a string")
        return v if isinstance(v, str) else None

    def bool(self, key: str, default: bool) -> bool:
        v = self._get(key, (bool,), "true or false")
        return default if v is None else bool(v)

    def number(self, key: str) -> float | None:
        v = self._get(key, (int, float), "a number")
        if v is None:
            return None
        assert isinstance(v, int | float)
        if not math.isfinite(v) or v < 0:
            raise ConfigError(f"{self.where}.{key}: expected a number >= 0")
        return float(v)

    def count(self, key: str) -> int | None:
        v = self._get(key, (int,), "a positive integer")
        if v is None:
            return None
        assert isinstance(v, int)
        if v <= 0:
            raise ConfigError(f"{self.where}.{key}: expected a positive integer")
        return v

    def sub(self, key: str, known: frozenset[str]) -> _Reader:
        v = self._get(key, (dict,), "a table")
        return _Reader(v if isinstance(v, dict) else {}, f"{self.where}.{key}", known)


_TOP = frozenset({"gateway", "providers", "routes", "prices", "budgets", "limits"})
_GATEWAY = frozenset(
    {"listen", "allow_remote", "tls_cert", "tls_key", "allow_unpriced", "default_max_tokens", "content"}
)
_PROVIDER = frozenset({"type", "base_url", "api_key_env", "api_key_file", "api_version", "region",
                       "project", "credentials_file", "model_ids"})
_PRICE = frozenset({"input", "output", "cache_read", "cache_write"})
_BUDGETS = frozenset({"session", "day", "month"})
_LIMITS = frozenset({"requests_per_minute", "tokens_per_minute", "concurrent_streams"})


def _read_key_file(path: Path, where: str) -> str:
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}.api_key_file: cannot read {path}: {exc.strerror}") from exc
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(f"{where}.api_key_file: {path} is readable by others; chmod 600 it")
    if not text:
        raise ConfigError(f"{where}.api_key_file: {path} is empty")
    return text


def _provider(name: str, table: object, env: Mapping[str, str]) -> Provider:
    where = f"providers.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    r = _Reader(table, where, _PROVIDER)
    kind = r.text("type")
    try:
        ptype = ProviderType(kind or "")
    except ValueError as exc:
        known = ", ".join(t.value for t in ProviderType)
        raise ConfigError(f"{where}.type: unknown provider type {kind!r} (known: {known})") from exc
    region = r.text("region")
    if ptype in (ProviderType.BEDROCK, ProviderType.VERTEX) and not region:
        raise ConfigError(f"{where}.region: required for {ptype}")
    default_base = {ProviderType.BEDROCK: f"https://bedrock-runtime.{region}.amazonaws.com",
                    ProviderType.VERTEX: f"https://{region}-aiplatform.googleapis.com"}.get(ptype, "")
    base_url = (r.text("base_url") or default_base).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.base_url: expected an http:// or https:// URL")
    key_env, key_file = r.text("api_key_env"), r.text("api_key_file")
    if key_env and key_file:
        raise ConfigError(f"{where}: set api_key_env or api_key_file, not both")
    secret: str | None = None
    if key_env:
        secret = env.get(key_env) or None
        if secret is None:
            raise ConfigError(f"{where}.api_key_env: ${key_env} is not set")
    elif key_file:
        secret = _read_key_file(Path(key_file), where)
    elif ptype not in (ProviderType.OPENAI_COMPATIBLE, ProviderType.BEDROCK, ProviderType.VERTEX):
        raise ConfigError(f"{where}: needs api_key_env or api_key_file")
    if ptype is ProviderType.AZURE_OPENAI and not r.text("api_version"):
        raise ConfigError(f"{where}.api_version: required for azure-openai")
    ids = table.get("model_ids", {})
    if not isinstance(ids, dict) or not all(isinstance(v, str) for v in ids.values()):
        raise ConfigError(f"{where}.model_ids: expected a table of model name = provider id")
    return Provider(name, ptype, base_url, secret, r.text("api_version"), ids,
                    _cloud_auth(ptype, r, where, env, region or ""))


def _cloud_auth(ptype: ProviderType, r: _Reader, where: str, env: Mapping[str, str],
                region: str) -> BedrockAuth | VertexAuth | None:
    # Imported here: botocore and google-auth are loaded only by configs that use them.
    match ptype:
        case ProviderType.BEDROCK:
            from sandbox.gateway._cloud import BedrockAuth

            return BedrockAuth(region, where)
        case ProviderType.VERTEX:
            from sandbox.gateway._cloud import VertexAuth

            path = r.text("credentials_file") or env.get("GOOGLE_APPLICATION_CREDENTIALS")
            project = r.text("project")
            if not path or not project:
                raise ConfigError(f"{where}: vertex needs project and credentials_file "
                                  "(or $GOOGLE_APPLICATION_CREDENTIALS)")
            return VertexAuth(Path(path), project, region, where)
        case _:
            return None


def _prices(table: object, where: str) -> list[tuple[str, Price]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    out: list[tuple[str, Price]] = []
    for model, entry in table.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}.{model!r}: expected a table")
        r = _Reader(entry, f"{where}.{model!r}", _PRICE)
        inp, outp = r.number("input"), r.number("output")
        if inp is None or outp is None:
            raise ConfigError(f"{where}.{model!r}: input and output prices are required")
        out.append((model, Price(inp, outp, r.number("cache_read"), r.number("cache_write"))))
    return out


def parse_config(
    raw: Mapping[str, object], source: Path | None, env: Mapping[str, str] | None = None
) -> Config:
    environ: Mapping[str, str] = os.environ if env is None else env
    where = str(source) if source else "gateway config"
    top = _Reader(raw, where, _TOP)
    g = top.sub("gateway", _GATEWAY)
    providers_raw = raw.get("providers", {})
    if not isinstance(providers_raw, dict):
        raise ConfigError(f"{where}: providers: expected a table")
    providers = {n: _provider(n, t, environ) for n, t in providers_raw.items()}
    routes_raw = raw.get("routes", {})
    if not isinstance(routes_raw, dict):
        raise ConfigError(f"{where}: routes: expected a table")
    routes: list[tuple[str, tuple[str, ...]]] = []
    for pattern, names in routes_raw.items():
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}: routes.{pattern!r}: expected a list of provider names")
        for n in names:
            if n not in providers:
                raise ConfigError(f"{where}: routes.{pattern!r}: no provider named {n!r}")
        routes.append((pattern, tuple(names)))
    prices = _prices(raw.get("prices", {}), f"{where}: prices")
    prices += _prices(_shipped_prices(), "shipped prices")
    mode_text = g.text("content") or "block"
    try:
        content = ContentMode(mode_text)
    except ValueError as exc:
        raise ConfigError(f"{where}: gateway.content: expected block, redact or off") from exc
    b = top.sub("budgets", _BUDGETS)
    lim = top.sub("limits", _LIMITS)
    cert, key = g.text("tls_cert"), g.text("tls_key")
    if bool(cert) != bool(key):
        raise ConfigError(f"{where}: gateway.tls_cert and gateway.tls_key go together")
    for name, value in (("tls_cert", cert), ("tls_key", key)):
        if value and not os.access(value, os.R_OK):
            raise ConfigError(f"{where}: gateway.{name}: cannot read {value}")
    return Config(
        source=source,
        listen=g.text("listen") or DEFAULT_LISTEN,
        allow_remote=g.bool("allow_remote", False),
        tls_cert=Path(cert) if cert else None,
        tls_key=Path(key) if key else None,
        allow_unpriced=g.bool("allow_unpriced", False),
        default_max_tokens=g.count("default_max_tokens") or 4096,
        content=content,
        providers=providers,
        routes=tuple(routes),
        prices=tuple(prices),
        budget_session=b.number("session"),
        budget_day=b.number("day"),
        budget_month=b.number("month"),
        limits=Limits(
            lim.count("requests_per_minute"), lim.count("tokens_per_minute"), lim.count("concurrent_streams")
        ),
    )
