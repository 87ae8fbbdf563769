"""Launch preparation shared by everything that runs a command sandboxed: `sandbox run` (the
runner) and the profile tools (`profile test|record`).

One implementation on purpose: the snapshot with its hide list, the environment, the limits,
the image and the egress bridge are the confinement, and a second, "minimal" copy of them is
how `profile test` once ran commands as host root with the workspace's secrets in view. Whatever
runs a command builds its `LaunchSpec` here and hands it to a backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.backends import LaunchSpec, Limits, Network, Seccomp, Snapshot
from sandbox.backends._mountns import MAPPED_ROOT_ID
from sandbox.errors import UsageError
from sandbox.fs import build_mask, present_to_git
from sandbox.fs._gitcreds import GIT_CONFIG, present_scrubbed
from sandbox.policy import secret_env_name

if TYPE_CHECKING:
    from sandbox._home import HomeLayout, SessionDirs
    from sandbox.egress import AskHook, EgressPolicy
    from sandbox.policy import Policy


def prepare_snapshot(layout: HomeLayout, dirs: SessionDirs, workspace: Path,
                     policy: Policy) -> tuple[Snapshot, tuple[str, ...]]:
    """The overlay dirs for one launch, with the mask of hidden files; returns the snapshot and
    every hidden pattern/path (the diff must treat writes there as forbidden)."""
    dirs.create()
    st = workspace.stat()
    owner = (MAPPED_ROOT_ID, MAPPED_ROOT_ID) if os.getuid() == 0 else (os.getuid(), os.getgid())
    # The merged root takes its attributes from upper's root: make it look like the
    # workspace root, owned by whoever the sandbox's root is outside.
    os.chmod(dirs.upper, st.st_mode & 0o7777)
    if os.getuid() == 0:
        os.chown(dirs.upper, *owner)
    # The cache is per workspace: an unchanged tree costs a stat per directory, not a walk.
    key = hashlib.sha256(os.fsencode(workspace)).hexdigest()[:16]
    hidden = build_mask(workspace, dirs.mask, policy.hide, owner,
                        cache_file=layout.cache_dir / f"mask-{key}.json",
                        unhide=policy.hide_except)
    # Hidden files git tracks look untouched to git inside (`withdraw_from_git` after the run).
    present_to_git(workspace, dirs.mask, dirs.upper, hidden, owner,
                   cache=layout.cache_dir / f"gitindex-{key}")
    # git credentials: the sandbox sees .git/config without them (never committed back)
    if present_scrubbed(workspace, dirs.mask, owner):
        hidden = (*hidden, GIT_CONFIG)
    snap = Snapshot(lower=workspace, upper=dirs.upper, work=dirs.work, mask=dirs.mask)
    return snap, tuple(policy.hide) + tuple(hidden)


def sandbox_env(policy: Policy, extra: Mapping[str, str | None],
                host: Mapping[str, str]) -> dict[str, str]:
    """Only named variables pass; a secret-looking name is never inherited from the host."""
    env = {k: host[k] for k in policy.env_pass if k in host}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PATH"] = ":".join(p for p in env["PATH"].split(":")
                           if p.startswith(("/usr", "/bin", "/sbin")))  # no host home dirs
    for key, value in extra.items():
        if not key or "=" in key:
            raise UsageError(f"-e {key!r}: expected KEY or KEY=VALUE")
        if value is None:
            if secret_env_name(key):
                raise UsageError(
                    f"-e {key}: refusing to pass the host's value of a secret-looking variable",
                    hint="secrets stay on the control plane; pass an explicit -e KEY=VALUE "
                    "(e.g. a dummy or scoped key) if the tool needs one")
            if key in host:
                env[key] = host[key]
        else:
            env[key] = value
    # IS_SANDBOX: agents that refuse to skip their own prompts as root (Claude Code's
    # --dangerously-skip-permissions) know they are in a sandbox, which is where people skip them.
    env.update({"HOME": "/root", "USER": "root", "SANDBOX": "1", "IS_SANDBOX": "1",
                "PWD": "/workspace"})
    return env


def git_history_note(layout: HomeLayout, workspace: Path, policy: Policy) -> str | None:
    """Once per workspace: a warning when the repository's history holds a hidden path (the
    sandbox can read it through git), naming the switch that hides .git whole."""
    if policy.hide_git:
        return None
    key = hashlib.sha256(os.fsencode(workspace)).hexdigest()[:16]
    marker = layout.cache_dir / f"git-history-{key}"
    if marker.exists():
        return None
    from sandbox.fs._gitcreds import hidden_in_history

    found = hidden_in_history(workspace, tuple(policy.hide))
    if found is None:
        return None  # not checked (git missing, failing or too slow): try again next run
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("\n".join(found))
    if not found:
        return None
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return (f"warning: the repository's history holds hidden path(s) ({shown}): the sandbox "
            f"can read them through git (git show REV:PATH). Set `[hide] git = true` in your "
            f"policy to hide .git entirely (shown once per workspace)")


def launch_spec(argv: tuple[str, ...], snapshot: Snapshot, env: dict[str, str],
                seccomp: Seccomp, scratch: Path, policy: Policy,
                image_root: Path | None) -> LaunchSpec:
    """The spec of one launch under `policy` (network: none; `attach_egress` adds the proxy)."""
    lim = policy.limits
    return LaunchSpec(
        argv=argv, snapshot=snapshot, env=env, seccomp=seccomp, scratch=scratch,
        limits=Limits(timeout_s=lim.timeout_s, memory_bytes=lim.memory_bytes,
                      cpus=lim.cpus, pids=lim.pids, write_bytes=lim.write_bytes,
                      output_bytes=lim.output_bytes),
        network=Network.NONE,
        image_root=image_root,
    )


def image(name: str) -> tuple[Path | None, str]:
    """(rootfs, digest) of a built image; (None, "host") for the read-only host view."""
    if name == "host":
        return None, "host"
    from sandbox.images import ImageStore  # only when an image is asked for

    store = ImageStore.from_env()
    record = store.resolve(name)
    if record is None:
        return None, "host"
    return store.rootfs(record.name), record.digest


def attach_egress(stack: contextlib.ExitStack, spec: LaunchSpec, rules: EgressPolicy, *,
                  run_id: str, notes: list[str], on_event: Callable[[Any], None] | None = None,
                  ask: AskHook | None = None) -> LaunchSpec:
    """Start the launch's egress proxy (stopped by `stack`, which then appends a summary of the
    refusals to `notes`) and bridge it into the spec: the sandbox keeps its loopback-only
    network; only the proxy's socket is handed in."""
    from sandbox import egress

    handle = stack.enter_context(egress.start(rules, run_id=run_id, run_dir=spec.scratch,
                                              on_event=on_event, ask=ask))

    def close() -> None:
        handle.stop()
        summary = egress.summarize_denials(handle.events())
        if summary:
            notes.append(summary)
        for err in handle.callback_errors():
            notes.append(f"egress audit record failed: {err}")

    stack.callback(close)
    return replace(spec, network=Network.EGRESS, env={**spec.env, **handle.env},
                   extra_mounts=(*spec.extra_mounts, *handle.mounts),
                   wrapper=(*handle.wrapper, *spec.wrapper))
