"""Egress: fail-closed networking for sandboxed runs, through an allowlisting proxy.

Mechanism (no veth, no iptables, works as root and as an unprivileged user):

1. Every sandbox gets its own network namespace holding only a loopback interface (nsjail's
   clone_newnet). There is no other interface and no route, so a program that ignores the
   proxy variables has nowhere to go: direct TCP to any address, UDP, ICMP, DNS to any
   resolver and IPv6 all fail with "network unreachable". Nothing needs to be configured for
   this to hold, and nothing can be misconfigured to break it: it is the absence of a route.
2. When the policy allows hosts, the runtime starts an `EgressProxy` on the host (threads in
   the runtime's process) and bind-mounts a per-run dir holding a unix control socket and a
   tiny shim at /run/sandbox-egress. The launch `wrapper` runs the shim first, inside the
   sandbox: it creates a TCP listening socket on the sandbox's 127.0.0.1:3128, passes that
   socket to the proxy over the unix socket (SCM_RIGHTS), waits for the acknowledgement and
   execs the command (which keeps the shim's pid, so exit status and signals are the
   command's own). The proxy then accepts connections that originate in the sandbox's
   namespace directly; its outgoing connections are made from the host's namespace. No
   relay process runs inside and bytes cross one hop.
3. The control socket accepts one hand-off and is then closed and unlinked, so the command
   cannot reach it. If the hand-off fails the command never runs (exit 125).
4. HTTP_PROXY/HTTPS_PROXY/ALL_PROXY (and lower-case) point at http://127.0.0.1:3128 and
   NO_PROXY is empty. The proxy speaks CONNECT, absolute-URI HTTP and SOCKS5, resolves names
   on the host, decides by host and port (`EgressPolicy.decide`), refuses loopback,
   link-local, private, reserved and the host's own addresses unless the policy names them
   (also when an allowed name resolves there), and answers refusals with 403 and
   `X-Sandbox-Deny: <reason>`.
5. `EgressHandle.stop()` shuts every connection and the listening socket down, which also
   drops the proxy's last reference to the sandbox's network namespace.
"""

from sandbox.egress._events import EgressEvent, Verdict, summarize_denials
from sandbox.egress._plumbing import DEFAULT_PORT, INSIDE_DIR, EgressHandle, start
from sandbox.egress._proxy import AskHook, EgressProxy, ProxyConfig
from sandbox.egress._resolve import (
    HOSTS_ENV,
    Resolver,
    default_resolver,
    host_addresses,
    load_hosts_file,
    mapped_resolver,
    system_resolver,
)
from sandbox.egress._rules import (
    Allow,
    Decision,
    Deny,
    DenyReason,
    EgressPolicy,
    EgressRule,
    RuleKind,
    classify,
    normalize_host,
)

__all__ = [
    "DEFAULT_PORT",
    "HOSTS_ENV",
    "INSIDE_DIR",
    "Allow",
    "AskHook",
    "Decision",
    "Deny",
    "DenyReason",
    "EgressEvent",
    "EgressHandle",
    "EgressPolicy",
    "EgressProxy",
    "EgressRule",
    "ProxyConfig",
    "Resolver",
    "RuleKind",
    "Verdict",
    "classify",
    "default_resolver",
    "host_addresses",
    "load_hosts_file",
    "mapped_resolver",
    "normalize_host",
    "start",
    "summarize_denials",
    "system_resolver",
]
