"""Export a run's connector (final, or its latest checkpoint) as a loadable checkpoint + model card.

    python -m train.export results/train/runs/diva-mini checkpoints/diva-mini

The folder gets `model.safetensors` + `config.json` (diva.checkpoint's layout, loadable by the
registry names `diva-mini` / `sft-mini`) and a README.md model card: data, steps, wall time,
final losses and validation numbers from the run's metrics.csv.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml



def training_clips(corpus: dict) -> str:
    """'16000 training utterances', or the range a run on a grown corpus' new clips used."""
    from train.data import first_clip
    start = first_clip(corpus, "train")
    if start:
        return f"training utterances {start}-{corpus.get('n_train') - 1} (the corpus' newest)"
    return f"{corpus.get('n_train')} training utterances"

def _last(rows: list[dict], split: str) -> dict:
    rows = [r for r in rows if r["split"] == split]
    return rows[-1] if rows else {}


def stage_summary(folder: Path, depth: int = 0) -> str:
    """One line on the run a connector was initialised from (its final/ config and run folder),
    and on the stages before it."""
    config = folder / "config.json"
    if not config.is_file():
        return f"`{folder}`"
    c = json.loads(config.read_text())
    line = f"`{folder}` ({c.get('loss')} loss, {c.get('trained_steps')} steps"
    run_cfg = folder.parent / "config.yaml"
    if run_cfg.is_file():
        t = yaml.safe_load(run_cfg.read_text()).get("train", {})
        line += f", batch {t.get('batch_size')}, lr {t.get('lr')} {t.get('schedule')}, {objective(t)}"
        if t.get("init_from") and depth < 5:
            line += f"; itself initialised from {stage_summary(Path(t['init_from']), depth + 1)}"
    return line + ")"


def objective(t: dict) -> str:
    weights = f"weights {t.get('distill_weight')}:{t.get('align_weight')}"
    aligned = t.get("loss") != "sft" or t.get("sft_keeps_alignment")
    ce = f" + nearest-embedding cross-entropy x{t['align_ce_weight']}" if t.get("align_ce_weight") and aligned else ""
    if t.get("align_whisper_weight") and aligned:
        head = "CTC" if t.get("align_whisper_ctc") else "cross-entropy"
        ce += f" + Whisper-head {head} x{t['align_whisper_weight']}"
    sft_kept = f", plus the alignment terms{ce}" if t.get("sft_keeps_alignment") else ""
    return {"distill": f"distillation + token alignment, {weights}{ce}",
            "sft": f"cross-entropy on the transcript after the audio prompt (SFT baseline){sft_kept}",
            "kl": f"KL over the text LLM reply + token alignment{ce}",
            "align": f"token alignment only{ce}, the LLM is not run"}.get(t.get("loss"), "unknown")


def wall_seconds(rows: list[dict]) -> float:
    """Training wall time over all sessions: `seconds` restarts from 0 when a run resumes."""
    total = last = 0.0
    for row in rows:
        if row["split"] != "train" or row.get("seconds") in (None, ""):
            continue
        seconds = float(row["seconds"])
        if seconds < last:  # a resumed process
            total += last
        last = seconds
    return total + last


def model_card(run: Path, cfg: dict, step: int, rows: list[dict], source: str) -> str:
    train, valid = _last(rows, "train"), _last(rows, "valid")
    t, m, c = cfg.get("train", {}), cfg.get("model", {}), cfg.get("corpus", {})
    hours = wall_seconds(rows) / 3600
    datacard = Path(c.get("root", "data/corpus")) / c.get("name", "") / "DATACARD.md"
    init = f"\n- Initialised from an earlier stage: {stage_summary(Path(t['init_from']))}." if t.get("init_from") else ""
    fmt = lambda row, k: (f"{float(row[k]):.4g}" if row.get(k) not in (None, "") else "n/a")
    blank = {"drop": "slots read as a special token are left out", "zero": "slots read as a special token are zeros",
             "collapse": "slots read as a special token or as the previous slot's token are left out (CTC's reading)"}
    trainable = ("query tokens, the Whisper-decoder copy (Q-Former); the projection is the fixed "
                 f"vocabulary bridge (`diva/bridge.py`, no weights; softmax temperature "
                 f"{m.get('bridge_temperature', 1.0)}, {blank[m.get('bridge_blank', 'zero')]})"
                 if m.get("projection") == "whisper-vocab"
                 else "query tokens, the Whisper-decoder copy (Q-Former), the projection")
    if m.get("n_extra_slots"):
        trainable += (f"; plus {m['n_extra_slots']} extra query slots after the words with their own linear "
                      "projection" + (" (the only part this run trained: `train.trainable: extra`)"
                                      if t.get("trainable") == "extra" else ""))
    objective_line = (f"`{t.get('loss')}` ({objective(t)})." if t.get("steps") != 0 else
                      "none in this run (0 steps): the connector is the earlier stage's, unchanged; "
                      "this run only chose the bridge options and validated it behind the bridge.")
    return f"""# {cfg.get('name', run.name)}: a DiVA connector trained on CPU

- Encoder (frozen): `{m.get('encoder')}`; LLM (frozen): `{m.get('llm')}`; {m.get('n_queries')} query tokens;
  the encoder hears the first {m.get('encoder_seconds', 30)} s of audio.
- Trainable: {trainable}. This folder holds
  only those (`model.safetensors`, `config.json` naming the encoder and LLM).
- Objective: {objective_line}{init}
- Data: synthetic speech corpus `{c.get('name', c.get('hf'))}` ({training_clips(c)}, TRAIN voices of
  `diva/voices.py`; text from WordNet 3.0; see {datacard}, committed as
  `results/train/corpus-{c.get('name')}_DATACARD.md`); validation on held-out VALID voices.
- Optimiser: AdamW lr {t.get('lr')} (betas {t.get('betas')}, eps {t.get('eps')}, wd {t.get('weight_decay')}),
  {t.get('schedule')} schedule, warmup {t.get('warmup')}, clip {t.get('clip')}, batch {t.get('batch_size')} x accum {t.get('grad_accum')}.
- Trained: {step} of {t.get('steps')} steps ({source}); wall time {hours:.2f} h on 2 CPU cores (all sessions).
- Final train losses (step {train.get('step', 'n/a')}): total {fmt(train, 'loss')}, distill {fmt(train, 'distill')},
  align {fmt(train, 'align')}, align_ce {fmt(train, 'align_ce')}, align_whisper {fmt(train, 'align_whisper')}, ce {fmt(train, 'ce')}.
- Validation (VALID voices, step {valid.get('step', 'n/a')}): loss {fmt(valid, 'loss')}, distill {fmt(valid, 'distill')},
  align {fmt(valid, 'align')},
  first-token agreement with the text branch {fmt(valid, 'first_token_agreement')}.
- Evaluation on the TEST voices: see `results/train/README.md`.

Reproduce: {'train the earlier stage first (its run folder holds its config.yaml), then ' if t.get('init_from') else ''}`python -m train.distill --config {cfg.get('config_path', 'train/configs/mini.yaml')}`
(resumable; `python -m train.export {run} <folder>` re-exports).
"""


def export(run: Path, out: Path) -> Path:
    import csv
    from safetensors.torch import load_file, save_file
    run, out = Path(run), Path(out)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    final = run / "final"
    ckpts = sorted((run / "ckpt").glob("step-???????")) if (run / "ckpt").exists() else []
    rows = list(csv.DictReader((run / "metrics.csv").open())) if (run / "metrics.csv").exists() else []
    out.mkdir(parents=True, exist_ok=True)
    if (final / "model.safetensors").exists():
        shutil.copy(final / "model.safetensors", out / "model.safetensors")
        config = json.loads((final / "config.json").read_text())
        step, source = config.get("trained_steps", 0), "final"
    elif ckpts:
        state = load_file(str(ckpts[-1] / "connector.safetensors"))
        save_file(state, str(out / "model.safetensors"))
        step, source = int(ckpts[-1].name.split("-")[1]), f"checkpoint {ckpts[-1].name}, run unfinished"
        m = cfg["model"]
        config = {"format": "diva-connector", "projection_layout": "out_in", "reference_encoder": m["encoder"],
                  "reference_decoder": m["llm"], "n_queries": m["n_queries"],
                  "encoder_seconds": m.get("encoder_seconds", 30.0), "trained_steps": step,
                  "loss": cfg["train"].get("loss")}
    else:
        raise FileNotFoundError(f"{run} has neither a final connector nor a checkpoint")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text(model_card(run, cfg, step, rows, source))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("out")
    args = parser.parse_args()
    print(export(Path(args.run), Path(args.out)))


if __name__ == "__main__":
    main()
