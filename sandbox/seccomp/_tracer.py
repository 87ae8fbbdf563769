"""The host-side tracer of `profile test|record`: `python -I -m sandbox.seccomp._tracer CODES
TALLY [--stdout-to-stderr] -- LAUNCHER...`.

The backend starts it in place of its launcher (LaunchSpec.tracer), so the launch is the
runtime's own, staging included; this process (whose only child is the launcher, as the ptrace
loop needs) then runs the launcher (nsjail) as a traced child,
follows every descendant (sandbox.seccomp._ptrace), applies the profile's verdicts at each
seccomp stop (sandbox.seccomp._trace._Recorder), writes the tally to TALLY and exits with the
launcher's status. If it dies, PTRACE_O_EXITKILL kills every tracee: nothing outlives it.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

from sandbox.seccomp import _ptrace
from sandbox.seccomp._trace import _Recorder, codes_from_json


def main(args: list[str]) -> int:
    try:
        sep = args.index("--")
    except ValueError:
        print("usage: _tracer CODES TALLY [--stdout-to-stderr] -- LAUNCHER...", file=sys.stderr)
        return 125
    head, argv = args[:sep], args[sep + 1:]
    codes_file, tally_file = Path(head[0]), Path(head[1])
    rec = _Recorder(codes_from_json(json.loads(codes_file.read_text())), Counter(), {})
    try:
        code = _ptrace.trace_children(argv, on_seccomp=rec.on_seccomp,
                                      stdout_to_stderr="--stdout-to-stderr" in head[2:])
    except KeyboardInterrupt:  # ^C reached us too: report what was seen; exiting kills the rest
        code = 130
    tmp = tally_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec.to_json()))
    os.replace(tmp, tally_file)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
