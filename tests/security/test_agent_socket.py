"""Another local account must not reach a root `sandbox agent`'s sockets.

As root, the agent's MCP socket and the run's gateway hand-off socket live under
/run/sandbox-egress/<name>-<random>; the random part hides nothing from a local user, who reads
the whole path in the agent sandbox's /proc/PID/mountinfo (world-readable). The attacker here is
the unprivileged test user: it finds the session's socket dirs there and connects, then tries to
write a file into the session through the MCP server (before the fix it could: at level 4 the
file was committed into root's workspace when the agent finished). The agent's own connection
from inside its sandbox must keep working.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import SANDBOX_BIN, TEST_USER, Cli, require_root
from tests.conftest import test_user as _test_user

_AGENT = """#!/usr/bin/python3
# The agent: connects to our server (as Claude Code's relay would), writes a file through
# it, then waits for the person's go.txt in the workspace (read through our tools) and exits.
import json, socket, time
s = socket.socket(socket.AF_UNIX)
s.connect("/run/sandbox-mcp/mcp.sock")
f = s.makefile("rwb")
def rpc(i, method, params):
    f.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
             + "\\n").encode())
    f.flush()
    return json.loads(f.readline())
rpc(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                      "clientInfo": {"name": "agent", "version": "1"}})
f.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\\n')
f.flush()
print(rpc(2, "tools/call", {"name": "write_file", "arguments": {"path": "legit.txt",
                                                               "content": "ok\\n"}}), flush=True)
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    r = rpc(3, "tools/call", {"name": "read_file", "arguments": {"path": "go.txt"}})
    if not r["result"].get("isError"):
        break
    time.sleep(0.05)
"""

_ATTACKER = """
import glob, json, socket, sys, time
session = sys.argv[1]
found, deadline = [], time.monotonic() + 90
while not found and time.monotonic() < deadline:
    for name in glob.glob("/proc/[0-9]*/mountinfo"):
        try:
            roots = [line.split()[3] for line in open(name)]
        except OSError:
            continue
        if any(r.startswith(f"/run/sandbox-egress/{session}-mcp-") for r in roots):
            found = sorted({r for r in roots if r.startswith("/run/sandbox-egress/")})
            break
    else:
        time.sleep(0.05)
out = {"dirs": found, "connected": [], "refused": [], "wrote": None}
for d in found:
    for sock in ("mcp.sock", "gateway.sock", "proxy.sock"):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(f"{d}/{sock}")
        except PermissionError:
            out["refused"].append(sock)
            continue
        except OSError:
            continue  # no such socket in this dir
        out["connected"].append(sock)
        if sock == "mcp.sock":
            f = s.makefile("rwb")
            for m in ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                          "protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "x", "version": "1"}}},
                      {"jsonrpc": "2.0", "method": "notifications/initialized"},
                      {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                          "name": "write_file",
                          "arguments": {"path": "pwned.txt", "content": "x"}}}):
                f.write((json.dumps(m) + "\\n").encode())
                f.flush()
                if "id" in m:
                    reply = json.loads(f.readline())
            out["wrote"] = reply
print(json.dumps(out))
"""


def test_another_account_cannot_drive_a_root_agents_session(cli: Cli, workspace: Path,
                                                            base_dir: Path) -> None:
    require_root()
    _test_user()
    agent = base_dir / "agent-bin" / "claude"
    agent.parent.mkdir()
    agent.write_text(_AGENT)
    agent.chmod(0o755)
    attacker = base_dir / "attacker.py"
    attacker.write_text(_ATTACKER)
    attacker.chmod(0o644)
    session = "sockattack"
    proc = subprocess.Popen(
        [str(SANDBOX_BIN), "agent", "claude", "-C", str(workspace), "--session", session,
         "--level", "4", "--bin", str(agent)],
        env=cli.env(), cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = subprocess.run(["runuser", "-u", TEST_USER, "--", "/usr/bin/python3", "-I",
                               str(attacker), session], capture_output=True, timeout=120,
                              check=False)
        (workspace / "go.txt").write_text("go\n")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = json.loads(seen.stdout or b"{}")
    assert report.get("dirs"), seen.stderr.decode()  # it did find the socket dirs...
    assert "mcp.sock" in report["refused"], report  # ...and tried the MCP socket
    assert report["connected"] == [] and report["wrote"] is None, report
    # The agent's own connection still works: its write is committed (level 4), not the other's.
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"legit.txt" in out, out
    assert (workspace / "legit.txt").read_text() == "ok\n"
    assert not (workspace / "pwned.txt").exists()
