"""The command lines: one entry point per stage, the pipeline, the benchmarks.

Each process runs NumPy's BLAS on one thread (parallelism comes from processes, docs/design.md
section 6). OpenBLAS reads its thread count once, when NumPy loads, and importing any entry point
loads NumPy, so it is set here, before that; without it CMA-ES's eigendecompositions spin a
second thread against the other rank's work on a 2-core machine.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
