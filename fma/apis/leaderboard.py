"""The leaderboard as data: ``configs/metafile.yml`` and ``tools/reproduce.py --verify``.

``configs/metafile.yml`` holds ``entries:``, one per published number::

    - name: fma_seeds_voc12_train_aug            # unique
      pipeline: configs/pipelines/fma_voc12.py   # the pipeline that produces it
      step: fine_seeds_eval                      # the step whose ``metrics`` file holds it
      dataset: voc12
      split: train_aug
      metric: mIoU                               # key of the metrics JSON
      protocol: ss                               # optional: protocol.mode the JSON must have
      expected: 74.2
      tolerance: 1.0                             # |got - expected| <= tolerance passes
      verify: local                              # local | server (VOC test) | reference
      source: "..."                              # paper table / README / log it comes from
      notes: "..."

:func:`verify` reads each entry's metrics file (the step's ``metrics`` path in the pipeline,
under the pipeline's work dir) and compares; ``server`` entries (numbers only the evaluation
server can give) and ``reference`` entries (published numbers without a single run that
reproduces them) are listed but not checked. A metrics file whose dataset, split or protocol
differs from the entry's is a miss, so a number of another split never passes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from fma.apis.pipeline_config import Pipeline, PipelineError, load_pipeline

__all__ = [
    "ENTRY_KEYS",
    "Check",
    "MetafileError",
    "format_checks",
    "load_metafile",
    "validate_metafile",
    "verify",
]

#: Keys of a metafile entry (``protocol`` and ``notes`` are optional).
ENTRY_KEYS = (
    "name", "pipeline", "step", "dataset", "split", "metric", "protocol", "expected",
    "tolerance", "verify", "source", "notes",
)  # fmt: skip
_REQUIRED = ("name", "pipeline", "dataset", "split", "metric", "expected", "source", "verify")
VERIFY_KINDS = ("local", "server", "reference")


class MetafileError(ValueError):
    """The metafile is malformed (the message names the entry and the field)."""


def load_metafile(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a metafile, with their fields checked."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MetafileError(f"{path}: cannot read the metafile ({exc})") from exc
    entries = (data or {}).get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise MetafileError(f"{path}: needs a top-level 'entries:' list")
    names = set()
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i + 1} ({entry.get('name', 'no name')})"
        if not isinstance(entry, dict):
            raise MetafileError(f"{where}: must be a mapping")
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        missing = [k for k in _REQUIRED if k not in entry]
        if unknown or missing:
            raise MetafileError(f"{where}: unknown keys {unknown}, missing keys {missing}")
        if entry["verify"] not in VERIFY_KINDS:
            raise MetafileError(f"{where}: verify must be one of {VERIFY_KINDS}")
        if entry["verify"] == "local" and ("step" not in entry or "tolerance" not in entry):
            raise MetafileError(f"{where}: a local entry needs 'step' and 'tolerance'")
        if entry["name"] in names:
            raise MetafileError(f"{where}: a second entry called {entry['name']!r}")
        names.add(entry["name"])
    return entries


def validate_metafile(path: str | os.PathLike, root: str | os.PathLike) -> list[str]:
    """Problems of the metafile against the repository: pipelines and steps that do not exist,
    steps without a metrics file (empty list when fine)."""
    root = Path(root)
    problems = []
    for entry in load_metafile(path):
        pipe_path = root / entry["pipeline"]
        if not pipe_path.is_file():
            problems.append(f"{entry['name']}: pipeline {entry['pipeline']} does not exist")
            continue
        if "step" not in entry:
            continue
        pipeline = load_pipeline(pipe_path, root=root, overrides=_placeholder_vars(pipe_path))
        try:
            step = pipeline.step(entry["step"])
        except PipelineError as exc:
            problems.append(f"{entry['name']}: {exc}")
            continue
        if not step.metrics:
            problems.append(f"{entry['name']}: step {step.name} writes no metrics file")
    return problems


def _placeholder_vars(pipe_path: Path) -> dict[str, str]:
    """Values for the pipeline's unset (None) vars, so that its steps can be listed."""
    from mmengine.config import Config

    raw = Config.fromfile(str(pipe_path), import_custom_modules=False).get("vars") or {}
    return {k: f"<{k}>" for k, v in raw.items() if v is None}


@dataclasses.dataclass
class Check:
    """The outcome of one entry."""

    entry: dict[str, Any]
    status: str  # ok, MISS, MISSING, not checked
    got: float | None = None
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("MISS", "MISSING")


def _check_entry(entry: dict[str, Any], pipeline: Pipeline, command: str) -> Check:
    if entry["verify"] != "local":
        why = {"server": "only the evaluation server scores it",
               "reference": "a published figure without a single run to compare"}  # fmt: skip
        return Check(entry, "not checked", message=f"{entry['verify']}: {why[entry['verify']]}")
    step = pipeline.step(entry["step"])
    if not step.metrics:
        return Check(entry, "MISSING", message=f"step {step.name} writes no metrics file")
    path = pipeline.abspath(step.metrics)
    if not path.is_file():
        return Check(entry, "MISSING", message=f"not produced yet: run {command} ({path})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Check(entry, "MISSING", message=f"{path}: unreadable ({exc})")
    for key in ("dataset", "split"):
        if data.get(key) is not None and str(data[key]) != str(entry[key]):
            return Check(entry, "MISS", message=f"{path} holds {key} {data[key]!r}, "
                         f"the entry is for {entry[key]!r}")  # fmt: skip
    if entry.get("protocol"):
        mode = (data.get("protocol") or {}).get("mode")
        if mode != entry["protocol"]:
            return Check(entry, "MISS", message=f"{path}: protocol {mode!r}, the entry's is "
                         f"{entry['protocol']!r}")  # fmt: skip
    got = data.get(entry["metric"])
    if not isinstance(got, (int, float)):
        return Check(entry, "MISSING", message=f"{path} has no number {entry['metric']!r}")
    ok = abs(float(got) - float(entry["expected"])) <= float(entry["tolerance"]) + 1e-9
    return Check(entry, "ok" if ok else "MISS", float(got), str(path))


def verify(
    metafile: str | os.PathLike,
    root: str | os.PathLike,
    *,
    pipeline: str | os.PathLike | None = None,
    work_dir: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[Check]:
    """Check the entries of ``pipeline`` (all entries when None) against the produced metrics.

    ``work_dir`` and ``overrides`` (vars) apply to the given pipeline as in a run; without a
    pipeline every entry reads its pipeline's default work dir.
    """
    root = Path(root)
    entries = load_metafile(metafile)
    if pipeline is not None:
        want = os.path.normpath(os.path.relpath(Path(pipeline).resolve(), root.resolve()))
        entries = [e for e in entries if os.path.normpath(e["pipeline"]) == want]
        if not entries:
            raise MetafileError(f"{metafile}: no entry for the pipeline {want}")
    elif work_dir is not None:
        raise PipelineError("--work-dir needs the PIPELINE_CONFIG it belongs to")
    loaded: dict[str, Pipeline] = {}
    checks = []
    for entry in entries:
        key = entry["pipeline"]
        if key not in loaded:
            pipe_path = root / key
            given = dict(overrides or {}) if pipeline is not None else {}
            values = {**_placeholder_vars(pipe_path), **given}
            loaded[key] = load_pipeline(pipe_path, root=root, work_dir=work_dir, overrides=values)
        command = f"python tools/reproduce.py {shlex.quote(key)}"
        if work_dir is not None:
            command += f" --work-dir {shlex.quote(work_dir)}"
        checks.append(_check_entry(entry, loaded[key], command))
    return checks


def format_checks(checks: Sequence[Check], out: TextIO) -> None:
    """Print the expected / got / delta table, then one line per miss or missing number."""
    rows = [("entry", "split", "metric", "expected", "got", "delta", "tol", "result")]
    for c in checks:
        e = c.entry
        delta = "-" if c.got is None else f"{c.got - float(e['expected']):+.2f}"
        tol = f"{float(e['tolerance']):.2f}" if "tolerance" in e else "-"
        got = "-" if c.got is None else f"{c.got:.2f}"
        rows.append((e["name"], str(e["split"]), e["metric"], f"{float(e['expected']):.2f}",
                     got, delta, tol, c.status))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(),
              file=out)  # fmt: skip
        if i == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)), file=out)
    for c in checks:
        if c.status != "ok" and c.message:
            print(f"{c.entry['name']}: {c.status}: {c.message}", file=out)
    failed = sum(c.failed for c in checks)
    checked = sum(c.status in ("ok", "MISS") for c in checks)
    skipped = sum(c.status == "not checked" for c in checks)
    print(f"{checked} checked, {failed} failed or missing, {skipped} not checkable here", file=out)
