"""One BLAS thread for the tools that never call BLAS (seeding, SEPL refinement).

numpy's OpenBLAS starts a worker thread per further core when numpy is imported, and those
threads spin for a while first: about 0.15 CPU s per process on a 2-core machine, paid again
by every worker process of ``--workers N``. A tool imports this module
before anything imports numpy; a value the user set is kept. Library code never imports it.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
