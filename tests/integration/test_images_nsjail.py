"""Built images on the default backend (nsjail), through the CLI, as root and as a user.

The image store lives in the 0700 state dir by default; root's sandbox (uid 1000000000 outside)
cannot traverse it, yet `--image` must work and the state dir must stay closed to the sandbox.
A sandbox that cannot start says why in one line and keeps nsjail's log for `sandbox show`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import Cli, require

IMAGES = Path(os.environ.get("SANDBOX_IMAGES", "/var/cache/sandbox/images"))


def _require_image(name: str) -> Path:
    require((IMAGES / name / "image.json").is_file(),
            f"image {name} in {IMAGES} (scripts/build-images.sh builds it, as root)")
    return IMAGES / name


def _private_state_with_images(cli: Cli) -> None:
    """The default layout: $SANDBOX_HOME is 0700, owned by the caller, holding images/."""
    cli.home.mkdir(mode=0o700)
    (cli.home / "images").symlink_to(IMAGES)
    if cli.user is not None:
        subprocess.run(["chown", "-h", "-R", f"{cli.user}:", str(cli.home)], check=True)


def test_image_in_the_private_state_dir_runs(sbx: tuple[Cli, Path]) -> None:
    cli, ws = sbx
    _require_image("debian-python")
    _private_state_with_images(cli)
    script = ("python3 -c 'import sys; print(sys.version_info[:2])'; "
              "test -e /usr/bin/git || echo image-has-no-git; "
              f"test -e {cli.home} || echo no-state-dir; "
              "test -e /run/sandbox-stage || echo no-stage")
    r = cli("run", "--image", "debian-python", "--", "sh", "-c", script, cwd=ws)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, err
    # The image's own Python (bookworm's 3.11), not the host's view (which has git).
    assert "(3, 11)" in out and "image-has-no-git" in out, out
    assert "no-state-dir" in out and "no-stage" in out, out
    doc = cli("doctor")
    line = [ln for ln in doc.stdout.decode().splitlines() if "] images:" in ln]
    assert line and line[0].startswith("[  ok]") and "debian-python" in line[0], doc.stdout


def _unreachable_store(base: Path) -> Path:
    """A store whose image `bad` has a rootfs nobody but root may enter."""
    src = _require_image("debian-python")
    store = base / "imgs"
    rootfs = store / "bad" / "rootfs"
    (rootfs / "usr" / "bin").mkdir(parents=True)
    rec = json.loads((src / "image.json").read_text())
    rec["name"] = "bad"
    (store / "bad" / "image.json").write_text(json.dumps(rec))
    shutil.copy2("/usr/bin/true", rootfs / "usr" / "bin" / "true")
    os.chmod(rootfs, 0o700)
    return store


def test_unreachable_image_fails_in_one_line_and_doctor_says_so(
        sbx: tuple[Cli, Path], base_dir: Path) -> None:
    cli, ws = sbx
    env = {"SANDBOX_IMAGES": str(_unreachable_store(base_dir))}
    rootfs = base_dir / "imgs" / "bad" / "rootfs"
    r = cli("run", "--image", "bad", "--", "true", cwd=ws, env=env)
    err = r.stderr.decode()
    assert r.returncode == 125, err
    # The cause, with the real path, on one line; no raw log on the terminal.
    cause = [ln for ln in err.splitlines() if str(rootfs) in ln]
    assert len(cause) == 1, err
    assert "\\n" not in err and "[E][" not in err and "[F][" not in err, err
    assert "sandbox-stage" not in err, err
    if cli.user is None:  # nsjail itself refused: its reason, and its log kept for `show`
        assert cause[0].startswith("sandbox: sandbox failed:"), err
        assert f"{rootfs}/usr" in cause[0] and "Permission denied" in cause[0], err
        show = cli("show", "last", cwd=ws, env=env)
        text = show.stdout.decode()
        assert show.returncode == 0, show.stderr.decode()
        assert "sandbox log:" in text and "Failed to mount mandatory point: '/usr'" in text, text
    else:  # the caller's own uid cannot even look: said before nsjail starts
        assert cause[0].startswith("sandbox: error: the sandbox cannot reach the image"), err
        assert "not traversable" in cause[0], err
    doc = cli("doctor", env=env)
    out = doc.stdout.decode()
    assert doc.returncode == 1, out
    assert f"[fail] images: bad: {rootfs} " in out, out
