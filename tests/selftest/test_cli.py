"""Bad input gets one clear line and a non-zero exit, never a hang or a traceback wall."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.selftest


@pytest.mark.parametrize(("args", "says"), [
    (["--splice-backend", "nosuch"], "valid: emulated, native, or module:Class"),
    (["--splice-backend", "nosuch.module:Splicer"], "cannot import nosuch.module"),
    (["--splice-backend", "tests.selftest.mutants:Nope"], "has no class Nope"),
    (["--splice-personality", "beos"], "valid: freebsd, openbsd"),
    (["--splice-modes", "cpy"], "valid: copy, splice"),
    (["--splice-time-scale", "0"], "must be positive"),
], ids=lambda v: v if isinstance(v, str) else "_".join(v))
def test_bad_option_is_one_line(args: list[str], says: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", *args, "tests/api", "--co", "-q"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0, f"exit 0 for {args}"
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n" + "\n".join(lines)
    assert says in lines[0], f"{lines[0]!r} does not say {says!r}"


def test_native_refused_where_kernel_has_no_splice() -> None:
    if sys.platform.startswith(("openbsd", "freebsd")):
        pytest.skip("this kernel has SO_SPLICE: the native backend is valid here")
    result = subprocess.run([sys.executable, "-m", "pytest", "--splice-backend", "native", "tests/api", "--co"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1 and "has no SO_SPLICE" in lines[0] and "emulated" in lines[0], lines
