"""The pipeline runner of ``tools/reproduce.py``: a whole method, resumable, in one command.

Modules, in the order a run uses them:

* :mod:`~fma.pipeline.config`: pipeline configs (``configs/pipelines/*.py``): vars, steps, the
  wiring check; :mod:`~fma.pipeline.checks`: the dataset checks a config lists;
* :mod:`~fma.pipeline.preflight`: what the selected steps need before anything runs (inputs,
  weights hashes, ``--cfg-options`` paths), with :mod:`~fma.pipeline.costs` (the cost plan, the
  total batch against the processes, free disk);
* :mod:`~fma.pipeline.runner`: :func:`~fma.pipeline.runner.run_pipeline`; per step
  :mod:`~fma.pipeline.plan` decides (skip or run, and why), the runner executes the step as a
  child process (:mod:`~fma.pipeline.step_process`) and writes its record
  (:mod:`~fma.pipeline.records`, which also prints the summary table);
* :mod:`~fma.pipeline.fingerprint`: what decides a step's outputs, as one hash;
  :mod:`~fma.pipeline.stage_config`: each step's stage config parsed once per run, shared by the
  preflight and the fingerprints;
* :mod:`~fma.pipeline.leaderboard`: ``--verify``, the metrics against ``configs/metafile.yml``.
"""
