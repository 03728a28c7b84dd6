"""Shared by the benchmarks: paired, interleaved timing and the machine line.

Every benchmark times its two sides in one process, alternating which runs
first, and reports the median of the paired ratios: the machine is shared,
and absolute times drift while ratios of neighbours hold.
"""

import os
import platform
import statistics
import time

import jax


def machine() -> str:
    """One line naming the CPU, its cores, the JAX backend and versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    device = jax.devices()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{device.platform} ({device.device_kind}), python "
        f"{platform.python_version()}"
    )


def seconds(fn, *args) -> float:
    """Wall time of one call of ``fn(*args)``, waiting for its results."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def paired(a, b, repeats: int) -> dict:
    """Times ``a()`` and ``b()`` side by side, ``repeats`` pairs, ABBA order.

    Returns:
        ``{"a": median seconds, "b": median seconds, "ratio": median of the
        paired ratios a / b, "low"/"high": their quartiles}``.
    """
    times_a, times_b, ratios = [], [], []
    for i in range(repeats):
        if i % 2:
            tb, ta = seconds(b), seconds(a)
        else:
            ta, tb = seconds(a), seconds(b)
        times_a.append(ta)
        times_b.append(tb)
        ratios.append(ta / tb)
    quartiles = (
        statistics.quantiles(ratios, n=4, method="inclusive")
        if len(ratios) > 1
        else ratios * 3
    )
    return {
        "a": statistics.median(times_a),
        "b": statistics.median(times_b),
        "ratio": statistics.median(ratios),
        "low": quartiles[0],
        "high": quartiles[-1],
    }


def table(header, rows) -> str:
    """A Markdown table (it reads as plain text too)."""
    cells = [list(map(str, header))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[c]) for r in cells) for c in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells
    ]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)
