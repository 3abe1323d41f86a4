"""``tools/reproduce.py --verify`` on the real metafile: one checked entry per number (the
authors' rerun), the paper values shown as references, and metrics files that the pipeline's
own step did not write, or that hold another split, size or dataset, refused."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from tool_modules import load_tool

from fma.pipeline.leaderboard import load_metafile

REPO = Path(__file__).resolve().parents[2]
PIPE = "configs/pipelines/fma_voc12.py"


def _step_output(work: Path, step: str, relpath: str, data: dict, *, record: bool = True) -> Path:
    """A metrics file as the runner leaves it: the file, then the step's record."""
    path = work / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    if record:
        (work / "pipeline").mkdir(exist_ok=True)
        ended = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        (work / "pipeline" / f"{step}.json").write_text(json.dumps(
            {"pipeline": "fma_voc12", "step": step, "ended": ended, "metrics": str(path)}
        ))  # fmt: skip
    return path


def _verify(capsys, work: Path) -> tuple[int, dict[str, list[str]], str]:
    code = load_tool("reproduce").main(["--verify", str(REPO / PIPE), "--work-dir", str(work)])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    return code, rows, out


def test_one_local_entry_per_number_with_the_tolerances_asked_for():
    entries = {e["name"]: e for e in load_metafile(REPO / "configs" / "metafile.yml")}
    local = [e for e in entries.values() if e["verify"] == "local"]
    numbers = [(e["pipeline"], e["step"], e["metric"]) for e in local]
    assert len(numbers) == len(set(numbers))  # no two checked entries for one number
    assert entries["fma_seeds_voc12_rerun"]["verify"] == "local"
    assert entries["fma_seeds_voc12_paper"]["verify"] == "reference"
    assert entries["fma_m2f_voc12_val_paper"]["verify"] == "reference"
    for e in local:
        assert e["tolerance"] == (1.0 if e["step"].endswith("seeds_eval") else 1.5), e["name"]


def test_verify_checks_the_rerun_and_shows_the_paper_value(tmp_path, capsys):
    code, _rows, out = _verify(capsys, tmp_path)
    assert code == 1 and "not produced yet: run python tools/reproduce.py " + PIPE in out
    seeds = {"mIoU": 73.2, "dataset": "voc12", "split": "train_aug", "n_images": 10582}
    _step_output(tmp_path, "fine_seeds_eval", "eval/fine_seeds_train_aug.json", seeds)
    m2f = {"mIoU": 82.0, "dataset": "voc12", "split": "val", "n_images": 1449,
           "protocol": {"mode": "ss"}}  # fmt: skip
    _step_output(tmp_path, "stage2_eval", "stage2_eval/metrics_val.json", m2f)
    code, rows, out = _verify(capsys, tmp_path)
    assert code == 0, out
    # The rerun (73.9, 1.0) passes with 73.2; the paper's 74.2 is 1.0 away: shown, not checked.
    assert rows["fma_seeds_voc12_rerun"][4:] == ["73.20", "-0.70", "1.00", "ok"]
    assert rows["fma_seeds_voc12_paper"][4:] == ["73.20", "-1.00", "1.00", "reference"]
    assert rows["fma_m2f_voc12_val_rerun"][4:] == ["82.00", "-1.10", "1.50", "ok"]
    assert rows["fma_m2f_voc12_val_paper"][4:] == ["82.00", "-0.60", "1.50", "reference"]
    assert "2 checked, 0 failed or missing, 1 not checkable here, 2 reference" in out
    _step_output(tmp_path, "stage2_eval", "stage2_eval/metrics_val.json", {**m2f, "mIoU": 81.5})
    code, rows, _out = _verify(capsys, tmp_path)
    assert code == 1 and rows["fma_m2f_voc12_val_rerun"][-1] == "MISS"


def test_verify_questions_what_it_reads(tmp_path, capsys):
    good = {"mIoU": 73.9, "dataset": "voc12", "split": "train_aug", "n_images": 10582}
    rel = "eval/fine_seeds_train_aug.json"
    # A file copied into the work dir, without the step's record: not the pipeline's output.
    _step_output(tmp_path, "fine_seeds_eval", rel, good, record=False)
    _code, rows, out = _verify(capsys, tmp_path)
    assert rows["fma_seeds_voc12_rerun"][-1] == "MISS"
    assert "has no record of step fine_seeds_eval of this pipeline" in out
    # 50 images of another set with the right split name: refused by its image count.
    path = _step_output(tmp_path, "fine_seeds_eval", rel, {**good, "n_images": 50})
    _code, rows, out = _verify(capsys, tmp_path)
    assert rows["fma_seeds_voc12_rerun"][-1] == "MISS"
    assert "scores 50 images; the published number is on all 10,582 images" in out
    # Another dataset.
    _step_output(tmp_path, "fine_seeds_eval", rel, {**good, "dataset": "coco14"})
    _code, _rows, out = _verify(capsys, tmp_path)
    assert "holds dataset 'coco14', the entry is for 'voc12'" in out
    # The right file, but changed after the step ended.
    path = _step_output(tmp_path, "fine_seeds_eval", rel, good)
    _code, rows, _out = _verify(capsys, tmp_path)
    assert rows["fma_seeds_voc12_rerun"][-1] == "ok"
    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))
    _code, rows, out = _verify(capsys, tmp_path)
    assert rows["fma_seeds_voc12_rerun"][-1] == "MISS" and "was changed after step" in out
