"""The stage entry points the command-line tools call (L4: may use mmengine's Config).

One module per stage: SAM masks, seeds (SAMS), refined labels (SEPL), evaluation, stage II
helpers, mask and official-release imports, gamma sweeps. Runner-level helpers shared by the
tools (configs, checkpoints, total batch, distributed set-up) are :mod:`fma.engine`; the
pipeline runner of ``tools/reproduce.py`` is :mod:`fma.pipeline`.
"""
