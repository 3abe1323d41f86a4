"""Config loading of the tools: ``--cfg-options`` checking and the offline stage sections.

``--cfg-options`` (every tool) overrides entries with mmengine's dotted syntax
(``model.n_ctx=8``, ``train_dataloader.dataset.pipeline.0.type=...``). Unlike mmengine's
``Config.merge_from_dict``, which adds any key it is given, :func:`merge_cfg_options` refuses a
key that does not exist in the loaded config and names the nearest valid one, so a typo such as
``modle.n_ctx=4`` is never silently ignored. A key meant to be new is written with a leading
``+``: ``--cfg-options +model.new_option=1`` adds it (its parents are created as needed; a
parent that holds a non-dict value, such as ``model.caa=None``, is replaced by a dict). A dict
literal (``model={'n_ctx': 4}``, ``model.clip=dict(pretrained=None)``) is refused with one line
that asks for the dotted form: mmengine's ``DictAction`` does not parse it (it keeps the text as
a string, or recurses without end on ``dict(a=1,b=2)``); :class:`CfgOptionsAction` is the
``DictAction`` the tools use.

An offline-stage config (SAM masks, seeds, sweeps) is a Python file with one
``<section> = dict(...)`` whose keys are the keyword arguments of the stage function;
:func:`load_section` also checks those keys against the function's parameters. The work dir
follows mmseg's convention: ``--work-dir``, else the config's ``work_dir``, else
``work_dirs/<config stem>``, and :func:`output_lock` holds the one-writer lock of the folders a
tool writes into.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import inspect
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "NEW_KEY_PREFIX",
    "CfgOptionsAction",
    "ConfigKeyError",
    "ConfigSectionError",
    "ConfigValueError",
    "check_clip_weights",
    "check_section_keys",
    "launcher_rank",
    "load_section",
    "merge_cfg_options",
    "output_lock",
    "tool_work_dir",
]

#: Prefix of a ``--cfg-options`` key that is added on purpose (``+model.new_option=1``).
NEW_KEY_PREFIX = "+"


class ConfigSectionError(ValueError):
    """The config file lacks the section a tool reads, or the section is wrong."""


class ConfigKeyError(ConfigSectionError):
    """A ``--cfg-options`` key or a section key that does not exist (names the nearest one)."""


class ConfigValueError(ConfigSectionError):
    """A ``--cfg-options`` value that mmengine's ``DictAction`` cannot parse (a dict literal)."""


#: A value written as a dict literal: ``{...}`` or ``dict(...)`` (quotes around it allowed).
_DICT_LITERAL = re.compile(r"""^\s*['"]?\s*(\{|dict\s*\()""")


def _dotted_form(key: str, text: str) -> str:
    """The dotted ``--cfg-options`` entries equal to ``key=<dict literal>``, for the message
    (``model.n_ctx=4 model.csc=True``), or a generic example when ``text`` does not parse."""
    import ast

    def items(node: ast.expr) -> list[tuple[str, ast.expr]] | None:
        if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
            keys = [str(k.value) for k in node.keys if isinstance(k, ast.Constant)]
            return list(zip(keys, node.values, strict=True))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict":
            if node.args or any(kw.arg is None for kw in node.keywords):
                return None
            return [(str(kw.arg), kw.value) for kw in node.keywords]
        return None

    def flat(prefix: str, node: ast.expr) -> list[str] | None:
        entries = items(node)
        if entries is None:
            return None
        out: list[str] = []
        for name, value in entries:
            nested = flat(f"{prefix}.{name}", value) if items(value) is not None else None
            out += nested if nested is not None else [f"{prefix}.{name}={ast.unparse(value)}"]
        return out

    try:
        entries = flat(key, ast.parse(text.strip().strip("'\""), mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        entries = None
    if entries:
        return " ".join(entries)
    return f"{key}.<name>=<value> (e.g. model.clip.pretrained=None)"


def _dict_literal_message(key: str, text: str) -> str:
    return (
        f"--cfg-options {key}={text}: a dict literal is not parsed by --cfg-options; set its "
        f"entries with the dotted form instead: {_dotted_form(key, text)}"
    )


def _check_value(key: str, value: Any) -> None:
    """Raise :class:`ConfigValueError` for a value that is a dict literal kept as text by
    ``DictAction`` (``'{...}'``, ``'dict(...)'``, or a list split at its commas)."""
    first = value[0] if isinstance(value, (list, tuple)) and value else value
    if isinstance(first, str) and _DICT_LITERAL.match(first):
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        raise ConfigValueError(_dict_literal_message(key, text))


class CfgOptionsAction(argparse.Action):
    """``--cfg-options KEY=VALUE ...`` parsed as mmengine's ``DictAction`` does, with one
    ``error:`` line and exit status 2 instead of a traceback for what it cannot parse: a dict
    literal (``DictAction`` recurses without end on ``dict(a=1,b=2)``; the message gives the
    dotted form), an entry without ``=``, or unbalanced brackets."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from mmengine.config import DictAction

        options = dict(getattr(namespace, self.dest, None) or {})
        for kv in [values] if isinstance(values, str) else values or []:
            key, sep, text = str(kv).partition("=")
            if not sep or not key:
                _exit(f"--cfg-options {kv}: expected KEY=VALUE, e.g. train_cfg.max_iters=10")
            if _DICT_LITERAL.match(text):
                _exit(_dict_literal_message(key, text))
            try:
                options[key] = DictAction._parse_iterable(text)
            except (AssertionError, RecursionError) as exc:  # unbalanced brackets, deep nesting
                why = "unbalanced brackets" if isinstance(exc, AssertionError) else "nesting"
                _exit(f"--cfg-options {kv}: cannot parse the value ({why}); write lists as "
                      "[a,b] or (a,b) with balanced brackets")  # fmt: skip
        setattr(namespace, self.dest, options)


def _exit(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _nearest(name: str, choices: Collection[str]) -> str | None:
    near = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return near[0] if near else None


def _check_existing(cfg: Mapping[str, Any], key: str, where: str) -> None:
    """Raise :class:`ConfigKeyError` unless the dotted ``key`` exists in ``cfg``."""
    node: Any = getattr(cfg, "_cfg_dict", cfg)  # mmengine's Config wraps a ConfigDict (a dict)
    parts = key.split(".")
    for i, part in enumerate(parts):
        path = ".".join(parts[:i])
        if isinstance(node, Mapping):
            if part in node:
                node = node[part]
                continue
            valid = sorted(str(k) for k in node)
            near = _nearest(part, valid)
            guess = ".".join([*parts[:i], near, *parts[i + 1 :]]) if near else ""
            hint = f" (did you mean {guess}?)" if near else ""
            scope = f"under {path}" if path else "at the top level"
            raise ConfigKeyError(
                f"--cfg-options {key}: {'.'.join(parts[: i + 1])} does not exist in {where}{hint}. "
                f"Valid keys {scope}: {', '.join(valid)}. To add a new key on purpose, write "
                f"{NEW_KEY_PREFIX}{key}=..."
            )
        if isinstance(node, (list, tuple)) and part.isdigit():
            if int(part) < len(node):
                node = node[int(part)]
                continue
            raise ConfigKeyError(
                f"--cfg-options {key}: {path} has {len(node)} entries in {where}, so index "
                f"{part} does not exist"
            )
        shown = repr(node) if len(repr(node)) <= 60 else repr(node)[:57] + "..."
        raise ConfigKeyError(
            f"--cfg-options {key}: {path} is {shown} in {where}, not a dict; write "
            f"{NEW_KEY_PREFIX}{key}=... to replace it by a dict (give all of its keys that way)"
        )


def _replaced_entry(cfg: Mapping[str, Any], key: str) -> str | None:
    """The dotted prefix of ``key`` whose existing value is neither a dict nor a list (e.g.
    ``model.caa`` = None for ``model.caa.box_thresh``), which a new key must replace."""
    node: Any = getattr(cfg, "_cfg_dict", cfg)
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if not isinstance(node, (Mapping, list, tuple)):
            return ".".join(parts[: i + 1])
    return None


def merge_cfg_options(
    cfg: Any, options: Mapping[str, Any] | None, *, exit_on_error: bool = False
) -> None:
    """Apply ``--cfg-options`` to an mmengine ``Config`` after checking every key exists.

    Args:
        cfg: the loaded ``mmengine.config.Config`` (changed in place).
        options: ``{dotted key: value}`` as parsed by mmengine's ``DictAction``. A key with a
            leading ``+`` is added even when it does not exist.
        exit_on_error: print ``error: <message>`` to stderr and exit with status 2 instead of
            raising (for the command-line tools: no traceback for a config mistake).

    Raises:
        ConfigKeyError: a key (without ``+``) that the config does not hold; the message names
            the nearest existing key and the valid keys at that level. Nothing is merged then.
        ConfigValueError: a value that is a dict literal (``model={'n_ctx': 4}``); the message
            gives the dotted form (``model.n_ctx=4``). Nothing is merged then.
    """
    if not options:
        return
    where = getattr(cfg, "filename", None) or "the config"
    merged = {}
    try:
        for key, value in options.items():
            if key.startswith(NEW_KEY_PREFIX):
                key = key[len(NEW_KEY_PREFIX) :]
                replaced = _replaced_entry(cfg, key)
                if replaced is not None:  # mmengine merges a dict into None only with _delete_
                    merged[f"{replaced}._delete_"] = True
            else:
                _check_existing(cfg, key, str(where))
            _check_value(key, value)
            merged[key] = value
    except (ConfigKeyError, ConfigValueError) as exc:
        if not exit_on_error:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    cfg.merge_from_dict(merged)


def check_clip_weights(cfg: Any, *, exit_on_error: bool = False) -> None:
    """Stop before the Runner is built when a stage I config names a CLIP weights file that does
    not exist or a folder (``model.clip.pretrained``); tags such as ``"openai"`` and None pass.

    Args:
        cfg: the loaded config (mmengine ``Config`` or a mapping).
        exit_on_error: print ``error: <message>`` to stderr and exit with status 2 instead of
            raising (for the command-line tools: one line instead of the Runner's log).

    Raises:
        FileNotFoundError: the file is missing; the message names it and the fix.
        fma.clip.weights.ClipWeightsError: a folder; the message names a weights file inside.
    """
    model = cfg.get("model")
    clip = model.get("clip") if isinstance(model, Mapping) else None
    if not isinstance(clip, Mapping) or clip.get("pretrained") is None:
        return
    from fma.clip.weights import ClipWeightsError, check_weights_path

    try:
        check_weights_path(clip["pretrained"])
    except (FileNotFoundError, ClipWeightsError) as exc:
        if not exit_on_error:
            raise
        print(f"error: {exc} (model.clip.pretrained)", file=sys.stderr)
        raise SystemExit(2) from None


def check_section_keys(
    section: str,
    values: Mapping[str, Any],
    func: Callable[..., Any],
    *,
    reserved: Collection[str] = (),
    where: str = "the config",
) -> None:
    """Raise :class:`ConfigKeyError` for a section key that ``func`` does not take.

    ``reserved`` are parameters the tool sets itself (not valid in the section); the message
    lists the valid keys (``func``'s other parameters) and the nearest one.
    """
    params = inspect.signature(func).parameters
    valid = sorted(
        n for n, p in params.items()
        if n not in reserved and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )  # fmt: skip
    for key in values:
        if key not in valid:
            near = _nearest(key, valid)
            hint = f" (did you mean {section}.{near}?)" if near else ""
            raise ConfigKeyError(
                f"{where}: {section}.{key} is not a setting of this stage{hint}. "
                f"Valid {section} keys: {', '.join(valid)}"
            )


def load_section(
    config: str | os.PathLike,
    section: str,
    cfg_options: Mapping[str, Any] | None = None,
    *,
    func: Callable[..., Any] | None = None,
    reserved: Collection[str] = (),
) -> tuple[Any, dict[str, Any]]:
    """Load ``config``, apply ``cfg_options`` and return ``(cfg, dict(cfg.<section>))``.

    With ``func``, the section's keys are checked against its parameters (minus ``reserved``).

    Raises:
        ConfigSectionError: the file has no ``<section> = dict(...)``.
        ConfigKeyError: an unknown ``--cfg-options`` key or section key (a ConfigSectionError).
    """
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    if section not in cfg:
        raise ConfigSectionError(f"{config} has no '{section} = dict(...)' section")
    merge_cfg_options(cfg, cfg_options)
    value = cfg[section]
    out = value.to_dict() if hasattr(value, "to_dict") else dict(value)
    if func is not None:
        check_section_keys(section, out, func, reserved=reserved, where=str(config))
    return cfg, out


def tool_work_dir(config: str | os.PathLike, cfg: Any, override: str | os.PathLike | None) -> Path:
    """``override``, else the config's ``work_dir``, else ``work_dirs/<config stem>``."""
    if override is not None:
        return Path(override)
    return Path(cfg.get("work_dir") or Path("work_dirs") / Path(config).stem)


#: Environment variables that hold a process's rank, per ``--launcher``.
_RANK_ENV = {
    "pytorch": ("RANK",),
    "slurm": ("SLURM_PROCID",),
    "mpi": ("OMPI_COMM_WORLD_RANK", "PMI_RANK"),
}


def launcher_rank(launcher: str, environ: Mapping[str, str] | None = None) -> int:
    """This process's rank under ``--launcher`` (0 without a launcher or variable)."""
    environ = os.environ if environ is None else environ
    for key in _RANK_ENV.get(launcher, ()):
        if environ.get(key, "").strip().isdigit():
            return int(environ[key])
    return 0


@contextlib.contextmanager
def output_lock(
    folders: Iterable[str | os.PathLike | None], *, launcher: str = "none", option: str
) -> Iterator[None]:
    """Hold the one-writer lock of every folder a tool writes into, for the ``with`` body.

    The lock is :func:`fma.io.manifest.folder_lock` (``<folder>/.fma.lock``, the holder's pid;
    the kernel releases it however the holder exits), the one the offline stages hold. A folder
    another run holds stops this one at once: one ``error:`` line naming the folder, the other
    run's pid and ``option``, exit status 1 (as the stage tools).

    Under a launcher only rank 0 takes the locks, before the process group exists: the other
    ranks never wait on a lock, and when rank 0 stops, the launcher (torchrun) ends them.

    Args:
        folders: the output folders (created when missing; None entries and repeats are skipped).
        launcher: the tool's ``--launcher``.
        option: how the user chooses the folder (``--work-dir``), named in the message.
    """
    if launcher_rank(launcher) != 0:
        yield
        return
    from fma.io.atomic import OutputError
    from fma.io.manifest import FolderLockedError, folder_lock

    unique = sorted({os.path.abspath(f) for f in folders if f is not None})
    with contextlib.ExitStack() as stack:
        for folder in unique:
            try:
                stack.enter_context(folder_lock(folder))
            except FolderLockedError as exc:
                print(f"error: {exc} ({option})", file=sys.stderr)
                raise SystemExit(1) from None
            except OutputError as exc:
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(1) from None
        yield
