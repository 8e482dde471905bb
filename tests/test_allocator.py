"""The glibc heap setting is opt-in (issue 21 item 8)."""

from __future__ import annotations

import subprocess
import sys


def _in_fresh_process(code: str, env_value: str | None) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k != "CONTRASTKIT_KEEP_HEAP_WARM"}
    if env_value is not None:
        env["CONTRASTKIT_KEEP_HEAP_WARM"] = env_value
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


def test_nothing_changes_unless_asked():
    code = "from contrastkit._allocator import keep_heap_warm; print(keep_heap_warm())"
    assert _in_fresh_process(code, None).strip() == "False"
    assert _in_fresh_process(code, "0").strip() == "False"


def test_the_environment_or_force_turns_it_on_where_glibc_is():
    import platform

    expected = "True" if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc" else "False"
    code = "from contrastkit._allocator import keep_heap_warm; print(keep_heap_warm())"
    assert _in_fresh_process(code, "1").strip() == expected
    forced = "from contrastkit._allocator import keep_heap_warm; print(keep_heap_warm(force=True))"
    assert _in_fresh_process(forced, None).strip() == expected
