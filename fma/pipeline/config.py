"""Pipeline configs: the ordered steps of a whole method, read from ``configs/pipelines/*.py``.

A pipeline config is an mmengine Python config file (``_base_`` works; dicts merge, the
``steps`` list is replaced whole)::

    pipeline = dict(name="fma_voc12", description="...")
    work_dir = "work_dirs/pipelines/fma_voc12"      # --work-dir overrides
    vars = dict(data_root="data/VOCdevkit/VOC2012", sam="pretrains/sam_vit_h_4b8939.pth")
    steps = [
        dict(
            name="sam_masks",                       # unique; --from / --only use it
            label="SAM masks",                      # for the summary table
            tool="tools/gen_sam_masks.py",          # or module="fma.demo.x" (python -m)
            args=["configs/sam/...py", "--work-dir", "{work_dir}/sam"],
            inputs=["{data_root}/ImageSets/Segmentation/train_aug.txt", "{sam}"],
            outputs=["{work_dir}/sam"],             # what it writes (moved aside on a clean rerun)
            distributed=True,                       # launcher options apply (torchrun)
            metrics=None,                           # a metrics JSON it writes (mIoU in the summary)
            enabled=True,                           # False / "false" / "" (after {vars}): left out
        ),
    ]

A config may also list ``checks = [dict(type="custom_dataset", root="{data_root}")]``
(:mod:`fma.pipeline.checks`): they run before the first step, ``--dry-run`` included; any
problem stops the run with all of them listed (with the runner's own preflight,
:mod:`fma.pipeline.preflight`), and vars set to ``"auto"`` take the values the
checks derive (e.g. ``seed_eval`` switches evaluation steps off without ground truth).

``{name}`` in any string of a step (and in var values) is replaced by the var of that name or by
``work_dir``; ``{{`` and ``}}`` stand for literal braces; an unknown name is an error. A var
whose value is ``None`` must be given on the command line (``--set name=VALUE``) before a step
that uses it can run. A var whose value is a list (a *list var*, e.g. the ``--cfg-options``
that one dataset needs and another does not) stands alone as an item of ``args``, ``inputs`` or
``outputs``: ``"{name}"`` becomes its items (none for ``[]``), each substituted in turn; inside
a longer string it is an error. ``--set name="a b"`` sets a list var to the shell words of the
value. Commands run with the repository root as the current directory, so
relative paths are relative to it. An argument with ``*`` (e.g. the best checkpoint
``{work_dir}/stage2/best_mIoU_iter_*.pth``) is a glob resolved when the step starts.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "STEP_KEYS",
    "Pipeline",
    "PipelineError",
    "Step",
    "check_wiring",
    "load_pipeline",
    "parse_set_options",
    "under",
]

#: Keys a step dict may hold.
STEP_KEYS = (
    "name", "label", "tool", "module", "args", "inputs", "outputs", "distributed", "metrics",
    "enabled",
)  # fmt: skip
_FALSE = ("", "0", "false", "no", "off", "none")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class PipelineError(ValueError):
    """A pipeline config, a var or a step selection is wrong; the message says what to fix."""


@dataclasses.dataclass
class Step:
    """One resolved step (every placeholder replaced)."""

    name: str
    label: str
    tool: str | None
    module: str | None
    args: list[str]
    inputs: list[str]
    outputs: list[str]
    distributed: bool = False
    metrics: str | None = None
    enabled: bool = True
    error: str | None = None  # why it cannot be resolved (an unset var); None when it can

    @property
    def program(self) -> list[str]:
        """``[tool]`` or ``["-m", module]``: what follows the python executable."""
        return [self.tool] if self.tool is not None else ["-m", str(self.module)]


@dataclasses.dataclass
class Pipeline:
    """A loaded pipeline: its steps with the vars substituted."""

    name: str
    description: str
    path: Path
    root: Path  # the commands' working directory (the repository root)
    work_dir: str
    vars: dict[str, Any]  # a str, a list of str (list vars), or None (unset)
    steps: list[Step]
    notes: list[str] = dataclasses.field(default_factory=list)  # what the checks reported
    problems: list[str] = dataclasses.field(default_factory=list)  # what the checks found
    images: int | None = None  # training images a check counted (custom folders: no split list)

    @property
    def records_dir(self) -> Path:
        """``<work_dir>/pipeline``: one ``<step>.json`` record per finished step, and logs."""
        return self.abspath(self.work_dir) / "pipeline"

    def abspath(self, path: str) -> Path:
        """``path`` relative to the repository root (absolute paths stay)."""
        return Path(path) if Path(path).is_absolute() else self.root / path

    def step(self, name: str) -> Step:
        """The step called ``name``; an unknown name lists the valid ones."""
        for step in self.steps:
            if step.name == name:
                return step
        valid = ", ".join(s.name for s in self.steps)
        raise PipelineError(f"{self.path}: no step {name!r}; the steps are: {valid}")


def parse_set_options(items: Sequence[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (``--set``) -> ``{k: v}``; an item without ``=`` is an error."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PipelineError(f"--set {item!r}: write KEY=VALUE")
        out[key.strip()] = value
    return out


class _Vars:
    """Lazy var resolution: a var may use other vars; an unset (None) var fails only when used."""

    def __init__(self, raw: Mapping[str, Any], where: str) -> None:
        self.raw = dict(raw)
        self.where = where
        self.done: dict[str, str] = {}

    def get(self, name: str, stack: tuple[str, ...] = ()) -> str:
        if name in self.done:
            return self.done[name]
        if name not in self.raw:
            known = ", ".join(sorted(self.raw))
            raise PipelineError(f"{self.where}: unknown placeholder {{{name}}}; known: {known}")
        if name in stack:
            raise PipelineError(f"{self.where}: vars refer to each other in a loop: {stack}")
        value = self.raw[name]
        if value is None:
            raise PipelineError(
                f"vars.{name} is not set: pass --set {name}=VALUE (pipeline {self.where})"
            )
        if isinstance(value, (list, tuple)):
            raise PipelineError(
                f"{self.where}: vars.{name} is a list: it stands alone as an item of args, "
                f"inputs or outputs ('{{{name}}}'), never inside a longer string"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = self.sub(str(value), (*stack, name))
        self.done[name] = text
        return text

    def sub(self, text: str, stack: tuple[str, ...] = ()) -> str:
        def rep(m: re.Match) -> str:
            if m.group(0) in ("{{", "}}"):
                return m.group(0)[0]
            return self.get(m.group(1), stack)

        return _PLACEHOLDER.sub(rep, text)

    def items(self, name: str) -> list[str]:
        """The substituted items of the list var ``name``."""
        return [self.sub(str(item), (name,)) for item in self.raw[name]]

    def expand(self, text: str) -> list[str]:
        """``text`` substituted: the items of a list var when ``text`` is exactly ``{name}`` of
        one, else one string."""
        whole = _PLACEHOLDER.fullmatch(text)
        if whole and whole.group(1) and isinstance(self.raw.get(whole.group(1)), (list, tuple)):
            return self.items(whole.group(1))
        return [self.sub(text)]


def _str_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise PipelineError(f"{where}: {key} must be a list of strings, got {value!r}")
    return [str(v) for v in value]


def _resolve_step(raw: Mapping[str, Any], index: int, values: _Vars, where: str) -> Step:
    unknown = sorted(set(raw) - set(STEP_KEYS))
    name = str(raw.get("name") or "")
    at = f"{where}: step {index + 1} ({name or 'no name'})"
    if unknown:
        raise PipelineError(f"{at}: unknown keys {unknown}; a step takes {', '.join(STEP_KEYS)}")
    if not _NAME.match(name):
        raise PipelineError(f"{at}: needs a name of letters, digits, '_', '-' or '.'")
    if (raw.get("tool") is None) == (raw.get("module") is None):
        raise PipelineError(f"{at}: give exactly one of tool='tools/x.py' or module='pkg.mod'")
    args = _str_list(raw.get("args"), "args", at)
    inputs = _str_list(raw.get("inputs"), "inputs", at)
    outputs = _str_list(raw.get("outputs"), "outputs", at)
    step = Step(
        name=name,
        label=str(raw.get("label") or name),
        tool=raw.get("tool"),
        module=raw.get("module"),
        args=args,
        inputs=inputs,
        outputs=outputs,
        distributed=bool(raw.get("distributed", False)),
        metrics=raw.get("metrics"),
    )
    enabled = raw.get("enabled", True)
    if isinstance(enabled, str):
        enabled = values.sub(enabled).strip().lower() not in _FALSE
    step.enabled = bool(enabled)
    errors: list[str] = []

    def resolve(text: str, many: bool) -> list[str]:
        # An unset var marks the step; the other fields still resolve.
        try:
            return values.expand(text) if many else [values.sub(text)]
        except PipelineError as exc:
            if "is not set" not in str(exc):
                raise PipelineError(f"{at}: {exc}") from None
            errors.append(str(exc))
            return [text]

    def sub(text: str) -> str:
        return resolve(text, False)[0]

    def expand(items: list[str]) -> list[str]:
        return [got for item in items for got in resolve(item, True)]

    step.label = sub(step.label)
    step.tool = sub(step.tool) if step.tool is not None else None
    step.args = expand(args)
    step.inputs = expand(inputs)
    step.outputs = expand(outputs)
    step.metrics = sub(str(step.metrics)) if step.metrics else None
    step.error = errors[0] if errors else None
    return step


def load_pipeline(
    path: str | os.PathLike,
    *,
    root: str | os.PathLike | None = None,
    work_dir: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    run_checks: bool = False,
) -> Pipeline:
    """Read a pipeline config and substitute its vars.

    Args:
        path: the pipeline config (``configs/pipelines/<name>.py``).
        root: working directory of the commands (default: the current directory).
        work_dir: replaces the config's ``work_dir``.
        overrides: var values from the command line (``--set``, ``--data-root``, ...); a name
            the pipeline has no var for is an error listing the vars.
        run_checks: run the config's ``checks`` (:mod:`fma.pipeline.checks`) first: their
            problems go to ``Pipeline.problems`` (the runner's preflight reports them with its
            own, :mod:`fma.pipeline.preflight`), their notes to ``Pipeline.notes``, and vars set to
            ``"auto"`` take the values they derive. Without it ``auto`` stays as it is.

    Raises:
        PipelineError: a missing section, a bad step, an unknown var or placeholder.
    """
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"pipeline config {path} does not exist")
    cfg = Config.fromfile(str(path), import_custom_modules=False).to_dict()
    for key in ("pipeline", "steps"):
        if key not in cfg:
            raise PipelineError(f"{path}: a pipeline config needs '{key} = ...'")
    meta = dict(cfg["pipeline"])
    name = str(meta.get("name") or path.stem)
    raw_vars = dict(cfg.get("vars") or {})
    for key, value in (overrides or {}).items():
        if key not in raw_vars:
            known = ", ".join(sorted(raw_vars)) or "none"
            raise PipelineError(f"{path}: the pipeline has no var {key!r} (its vars: {known})")
        if isinstance(raw_vars[key], (list, tuple)) and isinstance(value, str):
            value = shlex.split(value)  # a list var from the command line: its shell words
        raw_vars[key] = value
    if "work_dir" in raw_vars:
        raise PipelineError(f"{path}: 'work_dir' is not a var; set the top-level work_dir")
    values = _Vars(raw_vars, str(path))
    wd = values.sub(str(work_dir or cfg.get("work_dir") or Path("work_dirs/pipelines") / name))
    values.raw["work_dir"] = wd
    notes, problems, images = _run_checks(
        cfg.get("checks") or [], values, overrides or {}, str(path), run_checks
    )
    steps = [_resolve_step(s, i, values, str(path)) for i, s in enumerate(cfg["steps"])]
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            raise PipelineError(f"{path}: two steps are called {step.name!r}")
        seen.add(step.name)
    shown_vars = {}
    for key, raw in raw_vars.items():
        try:
            listed = isinstance(raw, (list, tuple))
            shown_vars[key] = values.items(key) if listed else values.get(key)
        except PipelineError:
            shown_vars[key] = None
    return Pipeline(
        name=name,
        description=str(meta.get("description", "")),
        path=path,
        root=Path(root) if root is not None else Path.cwd(),
        work_dir=wd,
        vars=shown_vars,
        steps=steps,
        notes=notes,
        problems=problems,
        images=images,
    )


def _run_checks(
    checks: Sequence[Mapping[str, Any]],
    values: _Vars,
    overrides: Mapping[str, Any],
    where: str,
    run: bool,
) -> tuple[list[str], list[str], int | None]:
    """Resolve (and with ``run`` execute) the ``checks`` of a config; returns their notes,
    problems and the training images one of them counted."""
    from fma.pipeline.checks import CHECKS

    notes: list[str] = []
    problems: list[str] = []
    images = None
    for i, raw in enumerate(checks):
        kind = str(dict(raw).get("type", ""))
        if kind not in CHECKS:
            known = ", ".join(sorted(CHECKS))
            raise PipelineError(f"{where}: check {i + 1} has type {kind!r}; known: {known}")
        if not run:
            continue
        kwargs = {k: values.sub(str(v)) for k, v in dict(raw).items() if k != "type"}
        result = CHECKS[kind](**kwargs)
        problems += result.problems
        notes += result.notes
        images = result.images if result.images is not None else images
        for key, value in result.derived.items():
            if values.raw.get(key) == "auto" and key not in overrides:
                values.raw[key] = value
    return notes, problems, images


def under(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies inside it (compared as normalised paths)."""
    p, f = Path(os.path.normpath(path)).parts, Path(os.path.normpath(folder)).parts
    return len(p) >= len(f) and p[: len(f)] == f


def check_wiring(pipeline: Pipeline) -> list[str]:
    """Problems of the step chain (empty when fine).

    Every input of an enabled step must lie in an output of an earlier enabled step or under
    a var's value (the data root, weights, given labels), and no output may lie in another
    step's output (a clean rerun moves outputs aside).
    """
    problems = []
    produced: list[tuple[str, str]] = []
    var_paths = [v for k, v in pipeline.vars.items()
                 if isinstance(v, str) and v and k != "work_dir"]  # fmt: skip
    for step in pipeline.steps:
        if not step.enabled:
            continue
        for item in step.inputs:
            if _PLACEHOLDER.search(item):  # an unset var (reported when the step is reached)
                continue
            if any(under(item, out) for out, _ in produced):
                continue
            if any(under(item, v) for v in var_paths):
                continue
            problems.append(
                f"step {step.name}: input {item} is neither written by an earlier step nor "
                "under a var (data root, weights, labels)"
            )
        for out in step.outputs:
            for other, owner in produced:
                if under(out, other) or under(other, out):
                    problems.append(
                        f"step {step.name}: output {out} overlaps output {other} of step {owner}"
                    )
        produced += [(out, step.name) for out in step.outputs]
    return problems
