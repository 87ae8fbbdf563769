"""LLM gateway: provider keys stay here, runs get virtual keys, every call is audited and
budgeted. Heavy parts (the HTTP stack) load only when a server starts, so `sandbox run`
without --llm never imports them.

    cfg = load_config(find_config(None))
    secret, key = KeyStore.at_home(home).create(budget_usd=2.0, session=sid)
"""

from sandbox.gateway._config import Config, ConfigError, find_config, load_config
from sandbox.gateway._keys import KeyStore, VirtualKey

__all__ = ["Config", "ConfigError", "KeyStore", "VirtualKey", "find_config", "load_config"]
