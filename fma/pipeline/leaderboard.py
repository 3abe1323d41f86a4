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
reproduces them) are listed but not checked; a ``reference`` entry with a ``step`` (a paper
value beside the authors' rerun, which is the ``local`` entry) shows the produced number and its
delta without failing. ``--verify`` questions what it reads: the metrics file must have been
written by that pipeline's step (its record in ``<work_dir>/pipeline/<step>.json`` names it, and
the file is not newer than the record), and it must hold the entry's dataset, split, protocol
and the split's full image count (:data:`fma.datasets.meta.SPLIT_SIZES`); otherwise it is a
miss, so a number of another split, year or subset never passes.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from fma.pipeline.config import Pipeline, PipelineError, Step, load_pipeline

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
        if "step" in entry and "tolerance" not in entry:
            raise MetafileError(f"{where}: an entry with a step needs 'tolerance'")
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
    status: str  # ok, MISS, MISSING, not checked, reference, reference, no number
    got: float | None = None
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("MISS", "MISSING")


def _written_by_step(pipeline: Pipeline, step: Step, path: Path) -> str:
    """Why ``path`` is not the metrics file that ``step`` of ``pipeline`` wrote ("" when it is):
    the step's record must exist, name this pipeline, step and file, and the file must not be
    newer than the record (a file copied in later is not the run's)."""
    record_path = pipeline.records_dir / f"{step.name}.json"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (f"{path} has no record of step {step.name} of this pipeline ({record_path}): "
                "only a metrics file the pipeline's own step wrote is checked")  # fmt: skip
    if record.get("pipeline") != pipeline.name or record.get("step") != step.name:
        return f"{record_path} is the record of {record.get('pipeline')}/{record.get('step')}"
    if record.get("metrics") and pipeline.abspath(record["metrics"]) != path:
        return f"{record_path} records the metrics file {record['metrics']}, not {path}"
    try:
        ended = _dt.datetime.fromisoformat(str(record.get("ended"))).timestamp()
    except ValueError:
        return f"{record_path}: no valid end time"
    if path.stat().st_mtime > ended + 2.0:
        return (f"{path} was changed after step {step.name} ended ({record.get('ended')}): "
                "rerun the step")  # fmt: skip
    return ""


def _check_entry(entry: dict[str, Any], pipeline: Pipeline, command: str) -> Check:
    """One entry: ``local`` entries pass or fail; ``reference`` entries with a step show the
    produced number beside the published one but never fail; ``server`` entries are listed."""
    kind = entry["verify"]
    if kind == "server" or (kind == "reference" and "step" not in entry):
        why = {"server": "only the evaluation server scores it",
               "reference": "a published figure without a single run to compare"}  # fmt: skip
        return Check(entry, "not checked", message=f"{kind}: {why[kind]}")
    step = pipeline.step(entry["step"])
    if not step.metrics:
        return Check(entry, "MISSING", message=f"step {step.name} writes no metrics file")
    path = pipeline.abspath(step.metrics)
    if not path.is_file():
        return _as_kind(entry, Check(entry, "MISSING", message=f"not produced yet: run {command} "
                                     f"({path})"))  # fmt: skip
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return _as_kind(entry, Check(entry, "MISSING", message=f"{path}: unreadable ({exc})"))
    why = _wrong_data(entry, data, path) or _written_by_step(pipeline, step, path)
    if why:
        return _as_kind(entry, Check(entry, "MISS", message=why))
    got = data.get(entry["metric"])
    if not isinstance(got, (int, float)):
        return _as_kind(entry, Check(entry, "MISSING", message=f"{path} has no number "
                                     f"{entry['metric']!r}"))  # fmt: skip
    ok = abs(float(got) - float(entry["expected"])) <= float(entry["tolerance"]) + 1e-9
    return _as_kind(entry, Check(entry, "ok" if ok else "MISS", float(got), str(path)))


def _wrong_data(entry: dict[str, Any], data: dict[str, Any], path: Path) -> str:
    """Why the metrics file is not of the entry's dataset, split, image count or protocol."""
    from fma.datasets.meta import SPLIT_SIZES

    for key in ("dataset", "split"):
        if str(data.get(key)) != str(entry[key]):
            return f"{path} holds {key} {data.get(key)!r}, the entry is for {entry[key]!r}"
    size = SPLIT_SIZES.get((str(entry["dataset"]), str(entry["split"])))
    if size is not None and data.get("n_images") != size:
        return (f"{path} scores {data.get('n_images')} images; the published number is on all "
                f"{size:,} images of {entry['dataset']} {entry['split']}")  # fmt: skip
    if entry.get("protocol"):
        mode = (data.get("protocol") or {}).get("mode")
        if mode != entry["protocol"]:
            return f"{path}: protocol {mode!r}, the entry's is {entry['protocol']!r}"
    return ""


def _as_kind(entry: dict[str, Any], check: Check) -> Check:
    """A ``reference`` entry keeps the number and the reason but never fails."""
    if entry["verify"] == "reference":
        word = "reference" if check.status in ("ok", "MISS") else "reference, no number"
        return dataclasses.replace(check, status=word)
    return check


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
    shown = sum(c.status.startswith("reference") for c in checks)
    print(f"{checked} checked, {failed} failed or missing, {skipped} not checkable here, "
          f"{shown} reference (shown, not checked)", file=out)  # fmt: skip
