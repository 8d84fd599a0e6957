"""Build the synthetic speech corpus: English text -> many offline voices -> a `datasets` corpus.

    python -m train.data build --config train/configs/diva-mini.yaml [corpus.n_train=2000 ...]
    python -m train.data plan  --config train/configs/diva-mini.yaml   # texts only (texts.jsonl), no audio
    python -m train.data info  --config train/configs/diva-mini.yaml

Layout under `data/corpus/<name>/`:
    texts.jsonl        every utterance: index, split, text, source (fixed once written; grows)
    shards/<split>-<start>-<end>/   one `datasets` dataset per shard (audio FLAC @ 16 kHz,
                       transcript, voice, speed, pitch, noise_snr_db, source), written atomically
    DATACARD.md        provenance, licences, voices, counts

Training texts are spoken by TRAIN voices, validation texts by VALID voices (held-out speakers).
A rerun skips finished shards; raising `n_train` adds texts and shards without touching old ones.
Each utterance's voice, speed, pitch and noise depend only on its index, so the corpus is
the same whichever worker synthesises which shard.
"""
from __future__ import annotations

import glob
import io
import json
import multiprocessing as mp
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from diva import voices as V
from diva.audio import SAMPLE_RATE
from diva.errors import ArgumentParser, fail
from train import text as T
from train.config import CORPUS_DEFAULTS, ConfigError, load_config, stages

def corpus_settings(cfg: dict) -> dict:
    return {**CORPUS_DEFAULTS, **cfg.get("corpus", {})}


def first_clip(settings: dict, split: str) -> int:
    """The first utterance a run uses: `train_from` continues on a grown corpus' new clips."""
    return settings.get("train_from", 0) if split == "train" else 0


def corpus_dir(settings: dict) -> Path:
    return Path(settings["root"]) / settings["name"]


# --- augmentation ---------------------------------------------------------------------------
def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise with unit RMS, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    spectrum /= {"white": 1.0, "pink": np.sqrt(f), "brown": f}[colour]
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    colour = ["white", "pink", "brown"][rng.integers(3)]
    signal_rms = np.sqrt(np.mean(audio ** 2))
    noisy = audio + coloured_noise(audio.size, colour, rng) * signal_rms / 10 ** (snr_db / 20)
    return (noisy / max(1.0, np.abs(noisy).max() / 0.99)).astype(np.float32)


# --- the plan: which texts, which voices ---------------------------------------------------------
def excluded_texts(patterns: list[str]) -> set[str]:
    """Texts that must never be spoken in training (the evaluation questions): any string field
    named question/text/transcript/prompt in JSON-lines, JSON or CSV files matching `patterns`."""
    keys = ("question", "text", "transcript", "prompt")
    found: set[str] = set()
    for pattern in patterns:
        for path in glob.glob(pattern, recursive=True):
            p = Path(path)
            try:
                if p.suffix == ".csv":
                    import pandas as pd
                    rows = pd.read_csv(p).to_dict("records")
                elif p.suffix == ".jsonl":
                    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
                else:
                    data = json.loads(p.read_text())
                    rows = data if isinstance(data, list) else data.get("items", [])
            except Exception as err:
                print(f"warning: cannot read exclusions from {p}: {err}", file=sys.stderr)
                continue
            found |= {str(r[k]) for r in rows if isinstance(r, dict) for k in keys if r.get(k)}
    return found


def packed(texts, limit: int):
    """Join consecutive (text, source) pairs into utterances of at most `limit` characters (a
    longer text stays alone): more words per clip for the same encoder and connector cost."""
    group: list[tuple[str, str]] = []
    for text, source in texts:
        if group and len(" ".join(t for t, _ in group)) + 1 + len(text) > limit:
            yield " ".join(t for t, _ in group), "+".join(sorted({s for _, s in group}))
            group = []
        group.append((text, source))
    if group:
        yield " ".join(t for t, _ in group), "+".join(sorted({s for _, s in group}))


def plan_texts(settings: dict) -> list[dict]:
    """Load texts.jsonl, extending it when the config asks for more utterances than it holds."""
    folder = corpus_dir(settings)
    path = folder / "texts.jsonl"
    rows = [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []
    have = {s: sum(r["split"] == s for r in rows) for s in ("train", "valid")}
    need = {"train": settings["n_train"], "valid": settings["n_valid"]}
    if all(have[s] >= need[s] for s in need):
        return rows
    banned = excluded_texts(settings["exclude"])
    total = sum(need.values()) + len(rows)
    limit, pack_from = settings.get("pack_chars") or 0, settings.get("pack_from") or 0
    if limit:  # a packed utterance takes several texts (few are shorter than 25 characters)
        total += max(0, need["train"] - max(have["train"], pack_from)) * max(1, limit // 25)
    if settings.get("texts"):  # an explicit list (tests, small experiments)
        pool = [(t, "inline") for t in settings["texts"] if t.lower() not in {b.lower() for b in banned}]
    else:
        print(f"collecting {total} texts from {', '.join(settings['text_weights'])} ...", file=sys.stderr)
        pool = T.collect(settings["text_weights"], total, seed=settings["seed"], exclude=banned)
    used = {r["text"].lower() for r in rows}
    fresh = iter(p for p in pool if p[0].lower() not in used)
    dense = packed(fresh, limit) if limit else fresh
    for split in ("valid", "train"):
        for i in range(have[split], need[split]):
            pack = split == "train" and i >= pack_from  # validation stays one text per clip
            try:
                text, source = next(dense if pack else fresh)
            except StopIteration:
                raise RuntimeError("the text sources ran out; lower n_train or add sources") from None
            rows.append({"index": i, "split": split, "text": text, "source": source})
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
    return rows


def sampler_for(split: str, settings: dict) -> V.VoiceSampler:
    voices = (settings.get("voices") or {}).get(split) or (V.TRAIN_VOICES if split == "train" else V.VALID_VOICES)
    held_out = {"train": {"valid", "test", "unheard"}, "valid": {"train", "test", "unheard"}}[split]
    if any(V.split_of(v) in held_out for v in voices):
        raise ValueError(f"{split} voices must come from the {split} split of diva.voices")
    return V.VoiceSampler(voices=tuple(voices), seed=settings["seed"] + (0 if split == "train" else 1),
                          speed_range=tuple(settings["speed_range"]), pitch_range=tuple(settings["pitch_range"]))


def shard_plan(rows: list[dict], settings: dict) -> list[tuple[str, int, int]]:
    plan = []
    for split in ("valid", "train"):  # validation first: training can start on a partial corpus
        n = sum(r["split"] == split for r in rows)
        n = min(n, settings["n_train" if split == "train" else "n_valid"])
        size = settings["shard_size"]
        first = first_clip(settings, split)  # earlier clips: not needed
        plan += [(split, start, min(start + size, n)) for start in range(0, n, size)
                 if min(start + size, n) > first]
    return plan


def shard_name(split: str, start: int, end: int) -> str:
    return f"{split}-{start:07d}-{end:07d}"


# --- synthesis -----------------------------------------------------------------------------------
def synthesize_one(row: dict, settings: dict) -> dict:
    r = sampler_for(row["split"], settings).draw(row["index"])
    audio = V.render(row["text"], r)
    rng = np.random.default_rng([settings["seed"], r.seed])
    snr = None
    if rng.random() < settings["noise_prob"]:
        snr = float(rng.uniform(*settings["snr_db"]))
        audio = add_noise(audio, snr, rng)
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return {"audio": {"bytes": buf.getvalue(), "path": None}, "transcript": row["text"],
            "voice": r.voice, "speed": r.speed, "pitch": r.pitch, "noise_snr_db": snr,
            "source": row["source"], "index": row["index"], "duration_s": audio.size / SAMPLE_RATE}


def features():
    from datasets import Audio, Features, Value
    return Features({"audio": Audio(sampling_rate=SAMPLE_RATE), "transcript": Value("string"),
                     "voice": Value("string"), "speed": Value("float32"), "pitch": Value("float32"),
                     "noise_snr_db": Value("float32"), "source": Value("string"),
                     "index": Value("int64"), "duration_s": Value("float32")})


def build_shard(job) -> tuple[str, int, int]:
    """Synthesise one shard and write it atomically (tmp folder, then rename)."""
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar
    disable_progress_bar()
    rows, settings, out = job
    records, failed = [], 0
    for row in rows:
        try:
            records.append(synthesize_one(row, settings))
        except V.SynthesisError as err:  # a text an engine cannot say: skip it, count it
            failed += 1
            print(f"skipped #{row['index']}: {err}", file=sys.stderr)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    Dataset.from_list(records, features=features()).save_to_disk(str(tmp))
    tmp.rename(out)
    return out.name, len(records), failed


def build(settings: dict) -> Path:
    folder = corpus_dir(settings)
    rows = plan_texts(settings)
    plan = shard_plan(rows, settings)
    shards = folder / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "valid")}
    todo = [(split, a, b) for split, a, b in plan if not (shards / shard_name(split, a, b)).exists()]
    jobs = [(by_split[s][a:b], settings, str(shards / shard_name(s, a, b))) for s, a, b in todo]
    print(f"{folder}: {len(plan)} shards planned, {len(plan) - len(todo)} done, {len(todo)} to build",
          file=sys.stderr)
    start = time.time()
    done = failed = 0
    with tqdm(total=sum(b - a for _, a, b in todo), unit="utt", desc="synthesising") as bar:
        if settings["workers"] <= 1:
            results = map(build_shard, jobs)
        else:
            pool = mp.get_context("fork").Pool(settings["workers"])
            results = pool.imap_unordered(build_shard, jobs)
        for name, n, bad in results:
            done, failed = done + n, failed + bad
            bar.update(n + bad)
        if settings["workers"] > 1:
            pool.close()
            pool.join()
    write_manifest(folder, plan, settings, rows, seconds=time.time() - start)
    return folder


# --- reading it back -------------------------------------------------------------------------------
def write_manifest(folder: Path, plan, settings: dict, rows: list[dict], seconds: float) -> None:
    names = [shard_name(*p) for p in plan]
    manifest = {"shards": names, "settings": settings, "build_seconds_last_run": round(seconds, 1)}
    (folder / "corpus.json").write_text(json.dumps(manifest, indent=2) + "\n")
    write_datacard(folder, settings, rows)


def load_corpus(folder: str | Path, split: str = "train", decode: bool = False, start: int = 0):
    """The finished shards of one split from utterance `start` on, concatenated (a partial corpus
    loads what is done).

    With decode=False the audio column holds {"bytes", "path"}; use `audio_array` on items.
    """
    from datasets import Audio, concatenate_datasets, load_from_disk
    folder = Path(folder)
    shards = [(int(b), int(e), p) for p in (folder / "shards").glob(f"{split}-*")
              for _, b, e in [p.name.split("-")[:3]] if p.suffix != ".tmp" and e.isdigit()]  # finished
    parts, covered, first = [], start, None
    for begin, end, path in sorted(shards, key=lambda s: (s[0], -s[1])):  # the longer shard first
        if end <= start or (first is not None and begin < covered):
            continue  # before `start`, or overlapping a longer shard
        if first is None and begin > start:
            raise FileNotFoundError(f"{split} utterances {start}-{begin} are not built under {folder}/shards")
        parts.append(load_from_disk(str(path)))
        first = begin if first is None else first
        covered = end
    if not parts:
        raise FileNotFoundError(f"no finished {split} shards under {folder}/shards")
    ds = concatenate_datasets(parts)
    if first < start:  # `start` falls inside the first shard
        ds = ds.select(range(start - first, len(ds)))
    return ds if decode else ds.cast_column("audio", Audio(sampling_rate=SAMPLE_RATE, decode=False))


def audio_array(item) -> np.ndarray:
    """16 kHz float32 samples from a corpus item's audio field, decoded or not (the one loader)."""
    from diva.audio import load_audio
    return load_audio(item)


def packing_note(settings: dict) -> str:
    if not settings.get("pack_chars"):
        return ""
    return (f"Training utterances from index {settings['pack_from']} on join consecutive texts up to "
            f"{settings['pack_chars']} characters (sources joined with '+'); validation clips hold one text.\n")


def write_datacard(folder: Path, settings: dict, rows: list[dict]) -> None:
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["split"], {}).setdefault(r["source"], 0)
        counts[r["split"]][r["source"]] += 1
    table = "\n".join(f"| {split} | {src} | {n} |" for split in sorted(counts)
                      for src, n in sorted(counts[split].items()))
    text = f"""# Data card: synthetic speech corpus `{settings['name']}`

Built by `python -m train.data build` (train/data.py). Every clip is synthetic speech from
offline text-to-speech engines; no recordings of people.

## Text: provenance and licence
| split | source | utterances |
| --- | --- | --- |
{table}

- **wordnet-examples**: example sentences quoted in WordNet 3.0 glosses.
- **wordnet-definitions**: "A <lemma> is <gloss>." / "To <verb> means to <gloss>." built from WordNet 3.0.
- **wordnet-questions**: questions from templates over WordNet 3.0 lemmas and relations (antonyms,
  instances of people and places, part-of links).
- **wordnet-entities**: statements naming WordNet 3.0's people and places (instance nouns): the gloss
  as a sentence, the kind of thing, the whole it is part of, everyday mentions from templates.

WordNet 3.0 is read from Debian's `wordnet-base` package (`/usr/share/wordnet`). {T.WORDNET_NOTICE}
THE DATABASE IS PROVIDED "AS IS" AND PRINCETON UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES.
Texts matching the evaluation questions ({settings['exclude'] or 'none given'}) are excluded.
{packing_note(settings)}
## Speech
- Engines and voices: espeak-ng (GPL-3; {len(V.ESPEAK_ACCENTS)} accents x {len(V.ESPEAK_VARIANTS)} variants),
  flite (BSD-like CMU licence; awb, kal, kal16), festival (kal_diphone); see `diva/voices.py`.
- Train voices: {len(V.TRAIN_VOICES)} voices, none of the held-out speakers. Validation voices:
  {', '.join(V.VALID_VOICES)}. Test voices (never used here; for the eval suites): {', '.join(V.TEST_VOICES)}.
- Speed x{settings['speed_range'][0]}-{settings['speed_range'][1]}, pitch x{settings['pitch_range'][0]}-{settings['pitch_range'][1]}
  (log-uniform); white/pink/brown noise on {settings['noise_prob']:.0%} of clips at SNR
  {settings['snr_db'][0]}-{settings['snr_db'][1]} dB. 16 kHz mono, stored as 16-bit FLAC.
- Seed {settings['seed']}: each utterance's voice and augmentation depend only on its index.

## Intended use
Training and validating speech-LLM connectors (DiVA context distillation). Synthetic voices only:
expect a gap to human speech.
"""
    (folder / "DATACARD.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m train.data", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "plan", "info"])
    parser.add_argument("--config", default="train/configs/diva-mini.yaml")
    parser.add_argument("overrides", nargs="*", help="corpus.n_train=4000 ...")
    args = parser.parse_intermixed_args(argv)
    try:
        todo = []  # each stage's corpus, in order (a corpus grown in steps is planned in those steps)
        for stage in stages(load_config(args.config), args.overrides):
            if not stage.get("corpus", {}).get("hf") and corpus_settings(stage) not in todo:
                todo.append(corpus_settings(stage))
    except ConfigError as error:
        return fail(error)
    for settings in todo:
        if args.command == "build":
            folder = build(settings)
            for split in ("train", "valid"):
                ds = load_corpus(folder, split, start=first_clip(settings, split))
                print(f"{split}: {len(ds)} utterances, {sum(ds['duration_s']) / 3600:.2f} h, "
                      f"{len(set(ds['voice']))} voices")
        elif args.command == "plan":  # fixes the texts of a corpus grown in steps, before any audio
            rows = plan_texts(settings)
            print(f"{corpus_dir(settings) / 'texts.jsonl'}: "
                  + ", ".join(f"{s} {sum(r['split'] == s for r in rows)}" for s in ("train", "valid")))
        else:
            for split in ("train", "valid"):
                try:
                    ds = load_corpus(corpus_dir(settings), split, start=first_clip(settings, split))
                    print(f"{split}: {len(ds)} utterances, {sum(ds['duration_s']) / 3600:.2f} h")
                except FileNotFoundError as err:
                    print(err)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
