"""Runs every benchmark, one after another, each in its own process.

    python benchmarks/run_all.py            # the full suite (minutes)
    python benchmarks/run_all.py --smoke    # each at a tiny size, for CI

Each benchmark prints its own machine line and a table of ratios measured
side by side; this runner only sequences them (never in parallel, which
would time them against each other) and stops at the first failure.
"""

import argparse
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent

# script -> its arguments for a tiny run
SCRIPTS = {
    "bench_step.py": ["--smoke"],
    "bench_flops.py": ["--smoke"],
    "bench_torch.py": ["--smoke"],
    "bench_epoch.py": ["--smoke"],
    "sweep_vs_sequential.py": ["--smoke"],
    "data_parallel.py": ["--smoke"],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny runs, for CI")
    parser.add_argument("--only", nargs="+", help="run only these scripts")
    args = parser.parse_args(argv)
    for script, smoke_args in SCRIPTS.items():
        if args.only and script not in args.only:
            continue
        if not (HERE / script).is_file():
            print(f"## {script}: not present, skipped\n", flush=True)
            continue
        print(f"## {script}", flush=True)
        command = [sys.executable, str(HERE / script)]
        command += smoke_args if args.smoke else []
        subprocess.run(command, check=True, cwd=HERE)
        print(flush=True)


if __name__ == "__main__":
    main()
