"""Run every benchmark and print one line each: the figure, the target, PASS / FALLS SHORT.

    python benchmarks/run.py            # all (about 5 to 10 minutes on 2 cores)
    python benchmarks/run.py 1 3        # only benchmarks 1 and 3
    python benchmarks/run.py --threads 1  # torch/BLAS threads for this process and its children

Each benchmark lives in its own module (bench_*.py; 6: precision.py) and can also be run
alone, e.g. ``python -m benchmarks.bench_clustering``.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    bench_clustering,
    bench_finetune,
    bench_recover,
    bench_study,
    bench_suite,
    bench_training_flops,
    bench_training_small,
    precision,
)
from benchmarks.common import Result, machine_note

BENCHMARKS = {
    "1": bench_training_flops.run,
    "2": lambda: bench_training_small.run() + bench_recover.run(),
    "3": bench_clustering.run,
    "4": bench_study.run,
    "5": bench_suite.run,
    "6": precision.run,
    "7": bench_finetune.run,
}


def main(argv: list[str]) -> int:
    if "--threads" in argv:  # e.g. --threads 1 on a machine other processes keep busy
        i = argv.index("--threads")
        threads = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    chosen = argv or list(BENCHMARKS)
    unknown = [c for c in chosen if c not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    print(f"# {machine_note()}", flush=True)
    failed = False
    for key in chosen:
        t0 = time.perf_counter()
        try:
            results = BENCHMARKS[key]()
        except Exception as e:  # report and go on with the others
            traceback.print_exc()
            results = [Result(f"{key} (crashed)", f"{type(e).__name__}: {e}", "-", False)]
        for r in results:
            print(r.line(), flush=True)
            failed |= r.passed is False
        print(
            f"#   benchmark {key} took {time.perf_counter() - t0:.0f} s; {machine_note()}",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
