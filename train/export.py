"""Export a finished stage's connector as a loadable checkpoint with a model card.

    python -m train.export results/train/runs/diva-mini/distill checkpoints/diva-mini

The folder gets the stage's `final/` (`model.safetensors`, `config.json`, `inference.json`: the
diva.checkpoint layout) and a README.md model card: data, steps, wall time, final losses and
validation numbers from the run's metrics.csv, and the stages it was initialised from.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import yaml

from diva.errors import ArgumentParser, UsageError, fail


def training_clips(corpus: dict) -> str:
    """'16000 training utterances', or the range a run on a grown corpus' new clips used."""
    start = corpus.get("train_from", 0)
    if start:
        return f"training utterances {start}-{corpus.get('n_train') - 1} (the corpus' newest)"
    return f"{corpus.get('n_train')} training utterances"


def _last(rows: list[dict], split: str) -> dict:
    rows = [r for r in rows if r["split"] == split]
    return rows[-1] if rows else {}


def objective(t: dict) -> str:
    head = ""
    if t.get("align_whisper_weight") and t.get("loss") != "sft":
        head = f" + Whisper-head {'CTC' if t.get('align_whisper_ctc') else 'cross-entropy'} x{t['align_whisper_weight']}"
    return {"distill": f"distillation + token alignment, weights {t.get('distill_weight')}:{t.get('align_weight')}{head}",
            "sft": "cross-entropy on the transcript after the audio prompt (SFT baseline)",
            "align": f"token alignment x{t.get('align_weight')}{head}, the LLM is not run"}.get(t.get("loss"), "unknown")


def stage_summary(folder: Path, depth: int = 0) -> str:
    """One line on the stage a connector was initialised from, and on the stages before it."""
    config = folder / "config.json"
    if not config.is_file():
        return f"`{folder}`"
    c = json.loads(config.read_text())
    line = f"`{folder}` ({c.get('loss')} loss, {c.get('trained_steps')} steps"
    if c.get("keep_update"):
        line += f", {c['keep_update']} of its update kept (interpolated with its start)"
    run_cfg = folder.parent / "config.yaml"
    if run_cfg.is_file():
        t = yaml.safe_load(run_cfg.read_text()).get("train", {})
        line += f", batch {t.get('batch_size')}, lr {t.get('lr')} {t.get('schedule')}, {objective(t)}"
        if t.get("init_from") and depth < 8:
            line += f"; itself initialised from {stage_summary(Path(t['init_from']), depth + 1)}"
    return line + ")"


def wall_seconds(rows: list[dict]) -> float:
    """Training wall time over all resumed runs: `seconds` restarts from 0 when a run resumes."""
    total = last = 0.0
    for row in rows:
        if row["split"] != "train" or row.get("seconds") in (None, ""):
            continue
        seconds = float(row["seconds"])
        if seconds < last:  # a resumed process
            total += last
        last = seconds
    return total + last


def model_card(run: Path, cfg: dict, step: int, rows: list[dict]) -> str:
    train, valid = _last(rows, "train"), _last(rows, "valid")
    t, m, c = cfg.get("train", {}), cfg.get("model", {}), cfg.get("corpus", {})
    fmt = lambda row, k: (f"{float(row[k]):.4g}" if row.get(k) not in (None, "") else "n/a")  # noqa: E731
    bridge = m.get("projection") == "whisper-vocab"
    trainable = ("query tokens and the Whisper-decoder copy (Q-Former); the projection is the fixed vocabulary "
                 f"bridge (`diva/bridge.py`, no weights; temperature {cfg.get('inference', {}).get('bridge_temperature', 1.0)})"
                 if bridge else "query tokens, the Whisper-decoder copy (Q-Former), the projection")
    init = f"\n- Initialised from: {stage_summary(Path(t['init_from']))}." if t.get("init_from") else ""
    what = f"`{t.get('loss')}` ({objective(t)})" if t.get("steps") else "none (0 steps: validates and exports)"
    return f"""# {cfg.get('name', run.name)}: a DiVA connector

- Encoder (frozen): `{m.get('encoder')}`; LLM (frozen): `{m.get('llm')}`; {m.get('n_queries')} query tokens;
  the encoder hears {m.get('encoder_seconds', 30)} s windows (longer audio is read piece by piece).
- Trainable: {trainable}. This folder holds only those (`model.safetensors`, `config.json` naming
  the encoder and LLM, `inference.json`).
- Last stage `{run.name}`: objective {what}; AdamW lr {t.get('lr')}, {t.get('schedule')} schedule, warmup
  {t.get('warmup')}, batch {t.get('batch_size')} x {t.get('grad_accum', 1)}; {step} steps, {wall_seconds(rows) / 3600:.2f} h.{init}
- Data: synthetic speech corpus `{c.get('name', c.get('hf'))}` ({training_clips(c)}, TRAIN voices of `diva/voices.py`);
  validation on held-out VALID voices.
- Final train losses: total {fmt(train, 'loss')}; validation (step {valid.get('step', 'n/a')}): loss {fmt(valid, 'loss')},
  first-token agreement with the text branch {fmt(valid, 'first_token_agreement')}.

Rebuild: `python -m train.distill --config {cfg.get('config_path')}` (all stages, resumable).
"""


def export(run: Path, out: Path) -> Path:
    run, out = Path(run), Path(out)
    final = run / "final"
    if not (final / "model.safetensors").exists():
        raise UsageError(f"{run} has no final connector (final/model.safetensors): give a finished stage's "
                         "run folder, e.g. results/train/runs/diva-mini/distill")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    rows = list(csv.DictReader((run / "metrics.csv").open())) if (run / "metrics.csv").exists() else []
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.json", "inference.json"):
        shutil.copy(final / name, out / name)
    step = json.loads((final / "config.json").read_text()).get("trained_steps", 0)
    (out / "README.md").write_text(model_card(run, cfg, step, rows))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m train.export", description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    try:
        print(export(Path(args.run), Path(args.out)))
    except UsageError as error:
        return fail(error)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
