"""Running a script in a child process, as the multi-device and script tests do.

JAX fixes its device count when it starts, so a test that needs N faked CPU
devices, or that runs a script as a user would, starts a fresh Python.
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
_DEVICE_COUNT = "--xla_force_host_platform_device_count"


def run_python(script, *args, devices=None, cwd=None, timeout=600) -> str:
    """Runs ``python script *args`` on the CPU and returns what it printed.

    Args:
        script: the path of the script.
        *args: its command-line arguments (converted with ``str``).
        devices: the number of faked CPU devices; ``None`` or 1 for JAX's
            default. Other ``XLA_FLAGS`` are kept.
        cwd: the working directory, default this one.
        timeout: seconds before the child is killed and the test fails.

    Returns:
        The child's standard output. A non-zero exit fails the test with the
        end of its standard error.
    """
    flags = [
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith(_DEVICE_COUNT)
    ]
    if devices is not None and devices > 1:
        flags.append(f"{_DEVICE_COUNT}={devices}")
    env = {
        **os.environ,
        "XLA_FLAGS": " ".join(flags),
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout
