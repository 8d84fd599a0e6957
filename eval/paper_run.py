"""`python -m eval.run --protocol paper`: the paper's evaluation protocol on its datasets.

    python -m eval.run --protocol paper --assistant diva-llama3-8b --task sdqa,heysquad

Per task (eval.paper_tasks): the paper's dataset and split, its prompt, greedy decoding (one
label-constrained token for classification), its metric (eval.paper_scoring). Audio only, as in
the paper. A DiVA assistant is switched to the `paper-eval` prompt layout (`--layout` picks
another). Results go to results/paper_protocol/ in our schema (<suite>.csv, items/), so
`python -m figures --eval-dir results/paper_protocol` draws them; answers are cached.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from diva.generation import extra_logits_processors
from diva.prompt import PromptLayout
from eval import paper_data, report, shard
from eval.cache import AnswerCache, answer_key, input_hash
from eval.constrained import LabelTokens
from eval.loaders import audio_array
from eval.paper_metrics import MetricUnavailable, load_cfmatcher, sentence_bleu
from eval.paper_scoring import score_paper
from eval.paper_tasks import PaperTask, select_paper_tasks

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "paper_protocol"
PROMPT_ID = "paper"


def set_layout(assistant, style: str) -> bool:
    """Give a DiVA assistant's model the named prompt layout; False when it has none."""
    model = getattr(assistant, "model", None)
    if model is None or not hasattr(model, "layout"):
        return False
    PromptLayout(model.tokenizer, style=style).around_audio("a prompt")  # ValueError now, not mid-run
    model.options = replace(model.options, prompt_layout=style)           # (paper-eval needs Llama 3's tokens)
    return True


def answer(assistant, identity: str, task: PaperTask, items, audios, cache: AnswerCache, *,
           layout: str | None, batch_size: int, progress: bool) -> list[str]:
    """The assistant's answers to the items' audio under the task's prompt and decoding."""
    labels = None
    if task.kind == "label":
        if getattr(assistant, "tokenizer", None) is None:
            raise RuntimeError(f"{assistant.name} has no LLM tokenizer: label-constrained decoding needs one")
        labels = LabelTokens(assistant.tokenizer, list(task.labels))
    settings = {"protocol": "paper", "layout": layout, "max_new_tokens": task.max_new_tokens,
                "decoding": f"greedy, first token of {list(task.labels)}" if labels else "greedy"}
    requests = [(answer_key(assistant=identity, task=f"paper:{task.name}", item_id=it.item_id,
                            modality="audio", prompt=task.prompt(it),
                            content=input_hash(audio=audios[it.item_id]), settings=settings), it)
                for it in items]
    found = cache.get_many(k for k, _ in requests)
    missing = sorted((r for r in requests if r[0] not in found), key=lambda r: audios[r[1].item_id].size)
    bar = tqdm(total=len(missing), desc=f"{assistant.name} {task.name} (paper)", file=sys.stderr,
               disable=not progress or not missing)
    for start in range(0, len(missing), batch_size):
        batch = missing[start:start + batch_size]
        clips, prompts = [audios[it.item_id] for _, it in batch], [task.prompt(it) for _, it in batch]
        if labels is None:
            texts = assistant.generate(clips, prompts, max_new_tokens=task.max_new_tokens)
        else:
            mask = labels.processor()
            with extra_logits_processors(mask):
                texts = assistant.generate(clips, prompts, max_new_tokens=1)
            if mask.calls == 0:
                raise RuntimeError(f"{assistant.name} does not decode through diva.generation: "
                                   "label-constrained decoding cannot be applied to it")
        cache.put_many({"key": k, "assistant": identity, "task": f"paper:{task.name}",
                        "item_id": it.item_id, "modality": "audio", "prompt_id": PROMPT_ID,
                        "response": text} for (k, it), text in zip(batch, texts))
        found.update({k: text for (k, _), text in zip(batch, texts)})
        bar.update(len(batch))
    bar.close()
    return [found[k] for k, _ in requests]


def evaluate_paper(args) -> int:
    from eval.run import (
        assistant_fingerprint,
        git_commit,
        load_assistants,
        register_checkpoints,
    )
    tasks = select_paper_tasks(args.task, args.suite)
    if args.dry_run:
        from eval.plan import print_eval_plan
        return print_eval_plan(args, tasks)
    out_dir = Path(args.out) if args.out else DEFAULT_OUT
    layout = args.layout or "paper-eval"
    matcher = None
    try:  # fail before any answer is generated, not after
        if any(t.kind == "qa" for t in tasks):
            matcher = load_cfmatcher()
        if any(t.kind == "translation" for t in tasks):
            for lang in paper_data.COVOST_LANGUAGES:
                sentence_bleu("", "x", lang)
    except MetricUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cache_path = args.cache or out_dir / "cache.sqlite"
    if (code := shard.run_sharded(evaluate_paper, args, tasks, cache_path)) is not None:
        return code  # under `accelerate launch`: the items shared out over the processes
    import torch
    torch.manual_seed(args.seed)
    register_checkpoints(args.checkpoint, args.llm_beam)
    assistants, notes = load_assistants(args.assistant)
    cache = shard.open_cache(cache_path)
    date, commit, started = dt.date.today().isoformat(), git_commit(), time.perf_counter()
    rows_by_suite: dict[str, list[dict]] = {}
    for name, assistant in list(assistants.items()):
        try:
            if not set_layout(assistant, layout):
                notes.append(f"{name}: no DiVA prompt layout to set; prompts go where its backend puts them")
        except ValueError as exc:
            notes.append(f"{name} skipped: layout {layout}: {exc}")
            print(notes[-1], file=sys.stderr)
            del assistants[name]
    for task in tasks:
        data_dir = os.path.join(args.data_dir, task.name) if args.data_dir else None
        try:
            items = shard.local_items([it for it in task.load(limit=args.limit, data_dir=data_dir)
                                       if it.audio is not None])
        except Exception as exc:
            notes.append(f"{task.name} skipped: could not load {task.source} ({type(exc).__name__}: {exc})")
            print(notes[-1], file=sys.stderr)
            continue
        audios = {it.item_id: audio_array(it.audio) for it in items}
        for name, assistant in assistants.items():
            identity = name + (f"@{fp}" if (fp := assistant_fingerprint(name)) else "")
            texts = answer(assistant, identity, task, items, audios, cache, layout=layout,
                           batch_size=max(1, args.batch_size), progress=not args.quiet)
            if shard.answering_only():
                continue  # a share of a sharded run: the main process scores everything
            labels = None
            if task.kind == "label":
                to_label = LabelTokens(assistant.tokenizer, list(task.labels))
                labels = [to_label.label(t) for t in texts]
            records, rows = score_paper(task, items, texts, labels, matcher, seed=args.seed)
            report.write_items(out_dir, task.suite, name, task.name, records)
            rows_by_suite.setdefault(task.suite, []).extend(
                {"assistant": name, "task": task.name, "modality": "audio", **row, "prompt_id": PROMPT_ID,
                 "seed": args.seed, "date": date, "commit": commit} for row in rows)
    for suite, rows in rows_by_suite.items():
        print(f"wrote {report.write_suite_csv(out_dir, suite, rows)}", file=sys.stderr)
    notes.append(f"last run: {', '.join(args.assistant)} on {', '.join(t.name for t in tasks)}, layout "
                 f"{layout}, in {time.perf_counter() - started:.0f} s (limit {args.limit}, seed {args.seed})")
    print(f"wrote {write_readme(out_dir, notes)}", file=sys.stderr)
    cache.close()
    return 0


README_HEAD = """# Paper-protocol results

Written by `python -m eval.run --protocol paper` (eval/paper_run.py): the paper's datasets,
splits, prompts and decoding (greedy; classification: one token restricted to the labels' first
tokens). Metrics: `panda` = mean CFMatcher score x100 over the items it could score (best gold
answer per item); `sentence_bleu` = mean of per-sentence BLEU (sacrebleu, BLEU(trg_lang=...));
`accuracy`; `weighted_f1` (emotion). Cells: value [95% bootstrap CI].
Per-item answers and scores: `items/<suite>/<assistant>__<task>.jsonl`.
"""


def write_readme(out_dir: Path, notes: list[str]) -> Path:
    import pandas as pd
    parts = [README_HEAD]
    for suite, title in report.SUITE_TITLES.items():
        path = Path(out_dir) / f"{suite}.csv"
        if path.exists():
            parts.append(f"## {title}\n\n" + report.suite_table(pd.read_csv(path, dtype={"subset": str})) + "\n")
    parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    path = Path(out_dir) / "README.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
