"""The evaluation runner.

    python -m eval.run --assistant text-mini,cascade-mini,diva-mini --suite all
    python -m eval.run --assistant cascade-mini --task spoken-qa --limit 20 --modality audio
    python -m eval.run --protocol paper --assistant diva-llama3-8b --task sdqa   # eval/paper_run.py

Each assistant answers each task's items in the modalities it supports (`audio`: it hears the
clip; `text`: its own LLM reads the transcript), in batches, through the SQLite answer cache.
Then every metric gets a 95% bootstrap CI, the modality gap is computed on the items asked both
ways, and results/eval/ is rewritten (see eval.report). Offline tasks only, unless
`--include-real` or `--task <real task>` (those need the network or `--data-dir`).
An assistant that cannot load (e.g. diva-mini before training) is skipped with its reason.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from diva.errors import ArgumentParser, UsageError, fail
from eval import reading, report, scoring, shard
from diva.generation import GenerationOptions
from eval.cache import Answer, AnswerCache, answer_key, input_hash
from eval.item import Item
from eval.loaders import audio_array
from eval.tasks import SUITES, Task, select

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_ASSISTANT = "text-mini"   # whose text answers spoken-qa's agreement metrics compare to
MODALITIES = ("audio", "text")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def assistant_fingerprint(name: str) -> str:
    """Changes when a local checkpoint is retrained, so stale cached answers are not reused."""
    try:
        from diva.assistants.registry import ASSISTANTS
        checkpoint, options = ASSISTANTS[name].checkpoint, ASSISTANTS[name].options
    except Exception:
        return ""
    if not checkpoint or not Path(checkpoint).is_dir():
        return ""
    h = hashlib.sha256()
    if options:  # e.g. another bridge reading of the same weights
        h.update(json.dumps(options, sort_keys=True).encode())
    for f in sorted(Path(checkpoint).rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(checkpoint)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def text_identity(name: str) -> str | None:
    """The text, cascade and DiVA backends answer a transcript with the same code and the same
    frozen LLM, so their text-modality answers are identical and cached under that LLM's name."""
    try:
        from diva.assistants.registry import ASSISTANTS
        spec = ASSISTANTS[name]
    except Exception:
        return None
    llm = spec.llm
    config = Path(spec.checkpoint or "") / "config.json"
    if spec.backend == "diva" and not llm and spec.checkpoint and config.is_file():
        llm = json.loads(config.read_text()).get("reference_decoder")
    return f"llm:{llm}" if spec.backend in ("text", "cascade", "diva") and llm else None


class Answerer:
    """Answers items with one assistant, in batches, through the cache."""

    def __init__(self, assistant, cache: AnswerCache, batch_size: int = 16, progress: bool = True,
                 options: GenerationOptions | None = None):
        self.assistant = assistant
        self.options = options or GenerationOptions()  # the task sets the length
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.progress = progress
        fingerprint = assistant_fingerprint(assistant.name)
        self.identity = assistant.name + (f"@{fingerprint}" if fingerprint else "")
        self.text_identity = text_identity(assistant.name) or self.identity
        self.generated = 0  # answers produced by the model in this process (not from the cache)
        self.seconds: dict[str, list] = {}  # modality -> [seconds spent answering, clips answered]

    def modalities(self, wanted: tuple[str, ...]) -> list[str]:
        ok = {"audio": self.assistant.accepts_audio, "text": self.assistant.accepts_text}
        return [m for m in wanted if ok[m]]

    def answers(self, task: Task, items: list[Item], modality: str, prompt_id: str,
                audios: dict[str, np.ndarray]) -> list[Answer]:
        """Each item's reply and, when the assistant reads speech as text, what it heard."""
        settings = {"max_new_tokens": task.max_new_tokens, "decoding": "greedy"}
        options = self.options.replace(max_new_tokens=task.max_new_tokens)
        requests = []
        for it in items:
            prompt = task.prompt(it, prompt_id)
            if modality == "audio":
                content = input_hash(audio=audios[it.item_id])
            else:
                content = input_hash(transcript=it.transcript)
            who = self.identity if modality == "audio" else self.text_identity
            key = answer_key(assistant=who, task=task.name, item_id=it.item_id,
                             modality=modality, prompt=prompt, content=content, settings=settings,
                             options=options)
            requests.append((key, it, prompt))
        found = self.cache.get_answers(k for k, _, _ in requests)
        missing = [r for r in requests if r[0] not in found]
        # similar lengths together: less padding per batch
        size = (lambda r: audios[r[1].item_id].size) if modality == "audio" else \
               (lambda r: len(r[1].transcript or "") + len(r[2] or ""))
        missing.sort(key=size)
        bar = tqdm(total=len(missing), desc=f"{self.assistant.name} {task.name} {modality}",
                   disable=not self.progress or not missing, file=sys.stderr)
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start:start + self.batch_size]
            prompts = [p for _, _, p in batch]
            started = time.perf_counter()
            if task.kind == "asr":  # what the assistant heard, not its reply (eval.reading)
                texts = reading.readings(self.assistant, [audios[it.item_id] for _, it, _ in batch])
                answers = [Answer(text) for text in texts]  # the reading is the prediction
            else:
                if modality == "audio":
                    replies = self.assistant.generate_replies([audios[it.item_id] for _, it, _ in batch],
                                                              prompts, options=options)
                else:
                    replies = self.assistant.generate_replies(
                        None, prompts, transcripts=[it.transcript for _, it, _ in batch], options=options)
                answers = [Answer(r.text, r.transcript if modality == "audio" else None) for r in replies]
            self.cache.put_many({"key": k, "assistant": self.identity, "task": task.name,
                                 "item_id": it.item_id, "modality": modality, "prompt_id": prompt_id,
                                 "response": answer.text, "heard": answer.heard}
                                for (k, it, _), answer in zip(batch, answers))
            found.update({k: answer for (k, _, _), answer in zip(batch, answers)})
            self.generated += len(batch)
            spent = self.seconds.setdefault(modality, [0.0, 0])
            spent[0], spent[1] = spent[0] + time.perf_counter() - started, spent[1] + len(batch)
            bar.update(len(batch))
        bar.close()
        return [found[k] for k, _, _ in requests]


def register_checkpoints(pairs: list[str], llm_beam: list[str] = ()) -> None:
    """--checkpoint NAME=FOLDER pairs into the registry; the NAMEs in `llm_beam` read their slots
    with the LLM-rescored CTC beam (diva/bridge.py)."""
    from diva.assistants.registry import AssistantSpec, register
    names = []
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not (Path(folder) / "config.json").is_file():
            raise UsageError(f"--checkpoint {pair!r}: expected NAME=FOLDER with FOLDER/config.json")
        options = {"bridge_decode": "llm-beam"} if name in llm_beam else {}
        register(name, AssistantSpec("diva", checkpoint=str(Path(folder).resolve()), options=options))
        names.append(name)
    if set(llm_beam) - set(names):
        raise UsageError(f"--llm-beam {', '.join(sorted(set(llm_beam) - set(names)))}: not a --checkpoint NAME")


def load_assistants(names: list[str]) -> tuple[dict, list[str]]:
    from diva.assistants.registry import load_assistant
    loaded, notes = {}, []
    for name in names:
        try:
            loaded[name] = load_assistant(name)
        except Exception as exc:  # e.g. AssistantNotAvailable: no trained checkpoint yet
            note = f"{name} skipped: {exc}"
            print(note, file=sys.stderr)
            notes.append(note)
    return loaded, notes


def evaluate(args) -> int:
    tasks = select(args.suite, args.task, args.include_real)
    if not tasks:
        print("no task selected", file=sys.stderr)
        return 2
    if args.dry_run:
        from eval.plan import print_eval_plan
        return print_eval_plan(args, tasks)
    if not any(not t.offline for t in tasks):
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
            os.environ.setdefault(var, "1")
    out_dir = Path(args.out)
    cache_path = args.cache or out_dir / "cache.sqlite"
    if (code := shard.run_sharded(evaluate, args, tasks, cache_path)) is not None:
        return code  # under `accelerate launch`: the items shared out over the processes
    import torch
    torch.manual_seed(args.seed)
    cache = shard.open_cache(cache_path)
    register_checkpoints(args.checkpoint, args.llm_beam)
    assistants, notes = load_assistants(args.assistant)
    wanted = MODALITIES if args.modality == "both" else (args.modality,)
    date, commit = dt.date.today().isoformat(), git_commit()
    pedant = None
    if any(t.kind == "qa" and not t.offline for t in tasks):
        from eval.metrics import load_pedant
        pedant = load_pedant()
        if pedant is None:
            notes.append("qa-metrics (PEDANT/PANDA) could not load: real QA tasks report SQuAD "
                         "exact_match and token_f1 instead")
    rows_by_suite: dict[str, list[dict]] = {s: [] for s in SUITES}
    started = time.perf_counter()
    for task in tasks:
        data_dir = os.path.join(args.data_dir, task.name) if args.data_dir else None
        try:
            items = shard.local_items(task.load(limit=args.limit, data_dir=data_dir))
        except Exception as exc:
            note = f"{task.name} skipped: could not load {task.source} ({type(exc).__name__}: {exc})"
            print(note, file=sys.stderr)
            notes.append(note)
            continue
        prompt_id = args.prompt if args.prompt in task.prompts else task.prompt_id
        hears = "audio" in wanted and any(a.accepts_audio for a in assistants.values())
        audios = {it.item_id: audio_array(it.audio) for it in items
                  if hears and it.audio is not None}
        reference, tokenize = None, None
        if task.compare_to_text_mini:
            reference, tokenize = _reference_answers(task, items, prompt_id, assistants, cache,
                                                     args, notes)
        for name, assistant in assistants.items():
            answerer = Answerer(assistant, cache, args.batch_size, progress=not args.quiet,
                                options=generation_options(args))
            records, metrics_by_modality, asked = [], {}, {}
            if task.kind == "asr" and not reading.has_reading(assistant):
                continue  # it hears nothing as text (a text-only LLM, a linear projection)
            for modality in answerer.modalities(wanted):
                subset = [it for it in items if (it.audio is not None if modality == "audio"
                                                 else it.transcript is not None)]
                if not subset:
                    continue
                answers = answerer.answers(task, subset, modality, prompt_id, audios)
                preds = [a.text for a in answers]
                if shard.answering_only():
                    continue  # a share of a sharded run: the main process scores everything
                ref = [reference.get(it.item_id, "") for it in subset] if reference else None
                recs, found = scoring.score_items(task, subset, preds, text_mini=ref,
                                                  tokenize=tokenize, pedant=pedant)
                records += [{**r, "modality": modality, "prompt_id": prompt_id,
                             **({"heard": a.heard} if a.heard is not None else {})}
                            for r, a in zip(recs, answers)]
                metrics_by_modality[modality], asked[modality] = found, subset
                for row in scoring.aggregate(task, subset, found, seed=args.seed):
                    rows_by_suite[task.suite].append(_row(name, task, modality, row, prompt_id,
                                                          args.seed, date, commit))
            if "audio" in asked and "text" in asked and \
                    [i.item_id for i in asked["audio"]] == [i.item_id for i in asked["text"]]:
                for row in scoring.gap_rows(task, asked["text"], metrics_by_modality["text"],
                                            metrics_by_modality["audio"], seed=args.seed):
                    rows_by_suite[task.suite].append(_row(name, task, "gap", row, prompt_id,
                                                          args.seed, date, commit))
            if records:
                report.write_items(out_dir, task.suite, name, task.name, records)
            notes += [f"{name} on {task.name} ({m}): {sec / n:.2f} s per clip over {n} clips "
                      f"(batch {args.batch_size})" for m, (sec, n) in answerer.seconds.items()]
    for suite, rows in rows_by_suite.items():
        if rows:
            print(f"wrote {report.write_suite_csv(out_dir, suite, rows)}", file=sys.stderr)
    notes.append(f"last run: {', '.join(args.assistant)} on {', '.join(t.name for t in tasks)} "
                 f"in {time.perf_counter() - started:.0f} s (batch size {args.batch_size}, "
                 f"limit {args.limit}, seed {args.seed})")
    print(f"wrote {report.write_readme(out_dir, notes)}", file=sys.stderr)
    cache.close()
    return 0


def _reference_answers(task, items, prompt_id, assistants, cache, args, notes):
    """text-mini's answers to the transcripts (the teacher's behaviour DiVA distils) and its
    tokenizer (for first-token agreement; whitespace words when it has none)."""
    try:
        from diva.assistants.registry import load_assistant
        teacher = assistants.get(REFERENCE_ASSISTANT) or load_assistant(REFERENCE_ASSISTANT)
    except Exception as exc:
        notes.append(f"{task.name}: no {REFERENCE_ASSISTANT} reference answers ({exc})")
        return None, None
    asked = [it for it in items if it.transcript is not None]
    answers = Answerer(teacher, cache, args.batch_size, progress=not args.quiet).answers(
        task, asked, "text", prompt_id, {})
    tokenizer = getattr(teacher, "tokenizer", None)
    return {it.item_id: a.text for it, a in zip(asked, answers)}, tokenizer and tokenizer.tokenize


def generation_options(args) -> GenerationOptions:
    """Greedy, or seeded sampling: the same --seed gives the same sampled replies."""
    try:
        if args.temperature < 0:
            raise ValueError("--temperature must be >= 0")
        if args.temperature > 0:
            return GenerationOptions(temperature=args.temperature, top_p=args.top_p, seed=args.seed)
        return GenerationOptions()
    except ValueError as error:
        raise UsageError(str(error)) from None


def _row(assistant, task, modality, row, prompt_id, seed, date, commit) -> dict:
    return {"assistant": assistant, "task": task.name, "modality": modality, **row,
            "prompt_id": prompt_id, "seed": seed, "date": date, "commit": commit}


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m eval.run", description=__doc__.split("\n")[0])
    p.add_argument("--assistant", required=True, type=lambda s: [a for a in s.split(",") if a],
                   help="comma-separated registry names, e.g. text-mini,cascade-mini")
    p.add_argument("--suite", default="all", choices=("all",) + SUITES)
    p.add_argument("--task", type=lambda s: [t for t in s.split(",") if t], default=None,
                   help="comma-separated task names (overrides --suite)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=FOLDER",
                   help="register a DiVA connector folder (e.g. a training run's final/) under NAME; "
                        "repeatable; then pass NAME to --assistant")
    p.add_argument("--llm-beam", action="append", default=[], metavar="NAME",
                   help="read this --checkpoint NAME's slots with the LLM-rescored CTC beam "
                        "(a whisper-vocab connector; diva/bridge.py)")
    p.add_argument("--limit", type=int, default=None, help="first N items (questions) per task")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--modality", default="both", choices=("audio", "text", "both"))
    p.add_argument("--seed", type=int, default=0, help="bootstrap, torch and sampling seed")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sample the assistants' replies at this temperature (default 0: greedy; "
                        "text-mini's reference replies stay greedy)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (with --temperature)")
    p.add_argument("--prompt", default=None, help="prompt id to use where a task has it")
    p.add_argument("--include-real", action="store_true",
                   help="also run the paper's hub datasets (network or --data-dir needed)")
    p.add_argument("--data-dir", default=None,
                   help="local parquet copies of the real datasets, one folder per task name")
    p.add_argument("--out", default=None,
                   help="results folder (default results/eval; results/paper_protocol for --protocol paper)")
    p.add_argument("--cache", default=None, help="SQLite answer cache (default <out>/cache.sqlite)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--protocol", default="ours", choices=("ours", "paper"),
                   help="paper: the paper's datasets, prompts, decoding and metrics (eval/paper_run.py)")
    p.add_argument("--layout", default=None, choices=("native", "reference", "paper-eval"),
                   help="--protocol paper: DiVA's prompt layout (default paper-eval; diva/prompt.py)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the tasks, items, assistants and memory per process; load and answer nothing")
    return p.parse_args(argv)


def check_names(args) -> None:
    """Unknown tasks or assistants, a bad --checkpoint and a misplaced --layout are errors before
    anything is loaded or written (an assistant that exists but cannot load here is skipped later,
    with a note)."""
    from diva.assistants.registry import find_assistant
    if args.layout and args.protocol != "paper":
        raise UsageError("--layout applies to --protocol paper only")
    if args.protocol == "paper":
        from eval.paper_tasks import select_paper_tasks
        select_paper_tasks(args.task, args.suite)
    else:
        select(args.suite, args.task, args.include_real)
    register_checkpoints(args.checkpoint, args.llm_beam)
    for name in args.assistant:
        find_assistant(name)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_names(args)
        generation_options(args)
    except UsageError as error:
        return fail(error)
    if args.protocol == "paper":
        from eval.paper_run import evaluate_paper
        return evaluate_paper(args)
    args.out = args.out or str(REPO_ROOT / "results" / "eval")
    return evaluate(args)


if __name__ == "__main__":
    raise SystemExit(main())
