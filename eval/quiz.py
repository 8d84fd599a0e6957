"""Spoken questions made from bsdgames' quiz facts (the `spoken-qa-unheard` set).

bsdgames ships ~2,000 quiz facts in /usr/share/games/bsdgames/quiz/ (BSD licence): one fact a
line, fields split by ':', `a|b` alternatives, `{x}` optional text, `[a|b]` a group, a trailing
backslash continuing the line. `expand` turns a field into every spelling it allows (the first one
with every optional part, which is what a question says); `questions` turns chosen files into
natural questions with their accepted answers.

    python -m eval.quiz             # rebuild eval/data/spoken_qa_unheard.jsonl (needs bsdgames)

The rebuild keeps questions that SmolLM2-135M-Instruct answers correctly as text (as the other
spoken-QA sets do), that no other evaluation set asks, and whose answer the question does not
already say; at most `--per-category` per category.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path

from eval.metrics import contains_answer, normalize_answer

QUIZ_DIR = Path("/usr/share/games/bsdgames/quiz")
DATA_DIR = Path(__file__).resolve().parent / "data"
OUT = DATA_DIR / "spoken_qa_unheard.jsonl"
MAX_SPELLINGS = 256
ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
            "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth").split()
TENS = {20: "twentieth", 30: "thirtieth", 40: "fortieth"}
TENS_PREFIX = {20: "twenty", 30: "thirty", 40: "forty"}
# element symbols that are everyday words: a reply would contain them by chance
WORD_SYMBOLS = {"i", "as", "in", "be", "no", "at", "he", "am", "es", "os"}
SKIP_MALE = {"y", "effeminate", "manly", "oedipus complex"}


# ---- the quiz file format ------------------------------------------------------------------
def expand(pattern: str) -> list[str]:
    """Every spelling a quiz field allows, the fullest first: "{G{eorge} }Washington" ->
    ["George Washington", "G Washington", "Washington"]; "Rom[e|a]" -> ["Rome", "Roma"]."""
    spellings, end = _alternatives(pattern, 0, "")
    if end != len(pattern):
        raise ValueError(f"unbalanced quiz pattern {pattern!r}")
    return list(dict.fromkeys(" ".join(s.split()) for s in spellings if s.strip()))


def _alternatives(s: str, i: int, close: str) -> tuple[list[str], int]:
    """Alternatives separated by '|' from s[i] up to `close` (or the end): (spellings, index)."""
    options = []
    while True:
        seq, i = _sequence(s, i)
        options += seq
        if i < len(s) and s[i] == "|":
            i += 1
            continue
        if close and (i >= len(s) or s[i] != close):
            raise ValueError(f"unbalanced quiz pattern {s!r}")
        return options[:MAX_SPELLINGS], i


def _sequence(s: str, i: int) -> tuple[list[str], int]:
    parts: list[list[str]] = []
    while i < len(s) and s[i] not in "|]}":
        if s[i] in "{[":
            inner, i = _alternatives(s, i + 1, "}" if s[i] == "{" else "]")
            parts.append(inner + [""] if s[i] == "}" else inner)
            i += 1
        else:
            j = i
            while j < len(s) and s[j] not in "{[|]}":
                j += 1
            parts.append([s[i:j]])
            i = j
    return ["".join(p) for p in itertools.islice(itertools.product(*parts), MAX_SPELLINGS)], i


def read_facts(path: Path) -> list[list[str]]:
    """A quiz file -> its facts, each a list of raw fields (continued lines joined)."""
    facts, line = [], ""
    for raw in path.read_text(encoding="latin-1").splitlines():
        line += raw
        if line.endswith("\\"):
            line = line[:-1]
            continue
        if line.strip():
            facts.append(line.split(":"))
        line = ""
    return facts


def say(field: str) -> str:
    """How a question says a field: its fullest first spelling, without parentheses."""
    spellings = expand(field)
    return re.sub(r"\s*\(.*?\)", "", spellings[0]).strip() if spellings else ""


def article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def ordinal(n: int) -> str:
    if n < 20:
        return ORDINALS[n - 1]
    tens, unit = divmod(n, 10)
    return TENS[n] if unit == 0 else f"{TENS_PREFIX[tens * 10]}-{ORDINALS[unit - 1]}"


# ---- questions per quiz file ---------------------------------------------------------------
def _capitals(facts, template):
    return [(template.format(say(f[0])), f[1]) for f in facts if len(f) > 1]


def _elements(facts):
    out = []
    for symbol, number, _, name in (f[:4] for f in facts if len(f) >= 4):
        if int(number) > 92:
            continue  # the file's heavier elements carry old symbols (Lw)
        out.append((f"Which chemical element has the atomic number {number}?", name))
        if symbol.lower() not in WORD_SYMBOLS:
            out.append((f"What is the chemical symbol for {say(name).lower()}?", symbol))
    return out


def _presidents(facts):
    out = []
    for n, f in enumerate(facts, 1):
        name = say(f[0])
        out.append((f"Who was the {ordinal(n)} president of the United States?", f[0]))
        if "Cleveland" not in name and len(f) > 3 and f[3].strip():
            out.append((f"Who succeeded {name} as president of the United States?", f[3]))
    return out


def _firsts(facts, template, answer=1, split_question=False):
    """One question per fact (per alternative of the first field when `split_question`)."""
    out = []
    for f in facts:
        if len(f) <= answer:
            continue
        subjects = expand(f[0]) if split_question else [say(f[0])]
        out += [(template.format(s), f[answer]) for s in subjects if s]
    return out


CATEGORIES = {
    "capitals": lambda q: sum((_capitals(read_facts(q / name), "What is the capital of {}?")
                               for name in ("africa", "america", "asia", "europe")), []),
    "states": lambda q: _capitals(read_facts(q / "state"), "What is the capital of the state of {}?"),
    "provinces": lambda q: _capitals([f for f in read_facts(q / "province") if f[0] != "Canada"],
                                     "What is the capital of the Canadian province of {}?"),
    "elements": lambda q: _elements(read_facts(q / "elements")),
    "presidents": lambda q: _presidents(read_facts(q / "pres")),
    "groups": lambda q: _firsts(read_facts(q / "collectives"), "What is a group of {} called?"),
    "young": lambda q: [(f"What is a baby {adult} called?", f[0]) for f in read_facts(q / "babies")
                        for adult in f[1].split("|")],
    "female": lambda q: [(f"What is the female of {article(say(f[0]))}?", f[1])
                         for f in read_facts(q / "sexes") if say(f[0]).lower() not in SKIP_MALE],
    "opposites": lambda q: _firsts(read_facts(q / "posneg"), "What is the opposite of {}?", split_question=True),
    "zodiac": lambda q: _firsts(read_facts(q / "chinese"),
                                "Which animal comes after the {} in the Chinese zodiac?"),
}


def questions(quiz_dir: Path = QUIZ_DIR, categories=tuple(CATEGORIES)) -> list[dict]:
    """Candidate questions [{question, answers, subset}] from the quiz files, merged by question
    (the same question from two facts accepts both answers); a question that already says one of
    its answers is left out."""
    merged: dict[str, dict] = {}
    for category in categories:
        for question, field in CATEGORIES[category](Path(quiz_dir)):
            row = merged.setdefault(question, {"question": question, "answers": [], "subset": category})
            row["answers"] = accepted(row["answers"] + expand(field))
    return [r for r in merged.values()
            if r["answers"] and not contains_answer(r["question"], r["answers"])]


def accepted(spellings: list[str]) -> list[str]:
    """The fullest spelling, then the ones no shorter accepted spelling is part of (an answer
    counts when any appears in the reply, so "James Carter" adds nothing next to "Carter")."""
    spellings = [s for s in dict.fromkeys(spellings) if normalize_answer(s)]
    minimal = [s for s in spellings if not any(o != s and contains_answer(s, [o]) for o in spellings)]
    return list(dict.fromkeys(spellings[:1] + minimal))


def asked_elsewhere(rows: list[dict], data_dir: Path = DATA_DIR) -> list[dict]:
    """Rows whose question another committed evaluation set already asks (case and punctuation
    aside) are left out."""
    seen = set()
    for path in data_dir.glob("*.jsonl"):
        if path != OUT:
            seen |= {normalize_answer(json.loads(x).get("question", "")) for x in path.read_text().splitlines() if x.strip()}
    return [r for r in rows if normalize_answer(r["question"]) not in seen]


def build(quiz_dir: Path, per_category: int, batch_size: int = 16) -> list[dict]:
    """Candidates that text-mini answers correctly as text, at most `per_category` each (asked in
    a fixed shuffled order within each category), with ids."""
    from diva.assistants.registry import load_assistant
    from eval.offline import stable_seed
    order = list(CATEGORIES)
    rows = sorted(asked_elsewhere(questions(quiz_dir)),
                  key=lambda r: (order.index(r["subset"]), stable_seed(r["question"])))
    teacher = load_assistant("text-mini")
    kept, count = [], {}
    for start in range(0, len(rows), batch_size):
        batch = [r for r in rows[start:start + batch_size] if count.get(r["subset"], 0) < per_category]
        if not batch:
            continue
        replies = teacher.generate(None, transcripts=[r["question"] for r in batch], max_new_tokens=32)
        for row, reply in zip(batch, replies):
            if contains_answer(reply, row["answers"]) and count.get(row["subset"], 0) < per_category:
                count[row["subset"]] = count.get(row["subset"], 0) + 1
                kept.append(row)
        print(f"{start + batch_size}/{len(rows)} looked at, {len(kept)} kept", file=sys.stderr, flush=True)
    return [{"id": f"unh{i:03d}", **r} for i, r in enumerate(kept, 1)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.quiz", description=__doc__.split("\n")[0])
    p.add_argument("--quiz-dir", default=str(QUIZ_DIR))
    p.add_argument("--per-category", type=int, default=15)
    p.add_argument("--dry-run", action="store_true", help="count the candidates; ask no model")
    args = p.parse_args(argv)
    if not Path(args.quiz_dir).is_dir():
        print(f"no quiz files in {args.quiz_dir}: apt-get install bsdgames", file=sys.stderr)
        return 2
    if args.dry_run:
        rows = asked_elsewhere(questions(Path(args.quiz_dir)))
        for category in CATEGORIES:
            print(category, sum(r["subset"] == category for r in rows))
        return 0
    rows = build(Path(args.quiz_dir), args.per_category)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} questions to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
