"""English text for the speech corpus, from offline sources with a clear licence.

Sources (each yields `(text, source)` pairs; `collect` mixes, filters and dedupes them):
- `wordnet-examples`: the example sentences quoted in WordNet 3.0 glosses ("she was able to
  program her computer"): ~45k short natural sentences over a very wide vocabulary.
- `wordnet-definitions`: declarative sentences made from a lemma and its gloss
  ("A harpsichord is a clavier with strings that are plucked by plectra.").
- `wordnet-questions`: questions over WordNet lemmas and facts, from templates: what a word means,
  opposites (antonym links), who a person was (noun.person instances), where a place is
  (noun.location instances and their part-of links), what something is used for, ...
- `wordnet-entities`: statements that name WordNet's people and places (its instance nouns), so
  that proper names occur many times: the gloss as a sentence ("Kathmandu is the capital and
  largest city of Nepal."), what kind of thing it is, what it is part of, and everyday mentions
  ("We spent a week in Nepal last summer."); prominent entities (many part-of links) get more.
- `wordnet-words`: single words and short phrases said alone ("Foxtrot.", "Eleventh.", "Left
  bracket."): the 1-3-word lemmas that occur in WordNet's sense-tagged corpus (`cntlist.rev`),
  so that the connector also hears utterances of one or two words.
WordNet 3.0 (Princeton University, WordNet 3.0 licence: use, copy, modify and distribute
for any purpose, keeping the copyright notice) comes from Debian's `wordnet-base` package.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path


WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_NOTICE = ("WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. "
                  "Used under the WordNet 3.0 licence (permission to use, copy, modify and distribute "
                  "for any purpose and without fee, with this notice).")
LEX_PERSON, LEX_LOCATION = 18, 15  # WordNet lexicographer files noun.person, noun.location
ALLOWED = re.compile(r"^[A-Za-z0-9 ,.;:'?!\-]+$")


@dataclass
class Synset:
    offset: str
    pos: str            # n v a s r
    lex_file: int
    lemmas: list[str]
    pointers: list[tuple[str, str]]   # (symbol, target offset)
    gloss: str
    examples: list[str]


def _parse(line: str) -> Synset | None:
    if line.startswith(" "):
        return None  # licence header
    head, _, gloss = line.partition(" | ")
    f = head.split()
    offset, lex_file, pos, n_words = f[0], int(f[1]), f[2], int(f[3], 16)
    lemmas = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).replace("_", " ") for i in range(n_words)]
    i = 4 + 2 * n_words
    n_ptr = int(f[i])
    pointers = [(f[i + 1 + 4 * k], f[i + 2 + 4 * k]) for k in range(n_ptr)]
    parts = [p.strip() for p in gloss.strip().split(";")]
    examples = [p.strip('"').strip() for p in parts if p.startswith('"')]
    definition = "; ".join(p for p in parts if not p.startswith('"'))
    return Synset(offset, pos, lex_file, lemmas, pointers, definition, examples)


def read_wordnet(root: Path = WORDNET_DIR) -> dict[str, list[Synset]]:
    if not (root / "data.noun").exists():
        raise FileNotFoundError(f"WordNet not found in {root}: apt-get install wordnet-base")
    out = {}
    for pos in ("noun", "verb", "adj", "adv"):
        lines = (root / f"data.{pos}").read_text(encoding="latin-1").splitlines()
        out[pos] = [s for s in map(_parse, lines) if s is not None]
    return out


def tidy(text: str) -> str:
    """One clean sentence: single spaces, capital first letter, final punctuation."""
    text = " ".join(text.replace("`", "'").replace("''", '"').split()).strip(" ;,")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def wordnet_examples(wn) -> list[tuple[str, str]]:
    return [(tidy(e), "wordnet-examples") for syns in wn.values() for s in syns for e in s.examples]


def wordnet_definitions(wn) -> list[tuple[str, str]]:
    out = []
    for s in wn["noun"]:
        if s.pointers and s.pointers[0][0] == "@i":  # instances are done as questions
            continue
        word, gloss = s.lemmas[0], s.gloss.split(";")[0].strip()
        if gloss and not gloss.startswith("("):
            out.append((tidy(f"{_article(word)} {word} is {gloss}"), "wordnet-definitions"))
    for s in wn["verb"]:
        gloss = s.gloss.split(";")[0].strip()
        if gloss and not gloss.startswith("("):
            out.append((tidy(f"to {s.lemmas[0]} means to {gloss}"), "wordnet-definitions"))
    return out


NOUN_Q = ["What is {a} {w}?", "What is {a} {w} used for?", "Can you explain what {a} {w} is?",
          "Tell me about {w}.", "How would you describe {a} {w} to a child?", "Where would I find {a} {w}?",
          "What is the difference between {a} {w} and {a2} {w2}?", "Give me an example of {a} {w}."]
VERB_Q = ["What does it mean to {w}?", "How do you {w}?", "Why would someone {w}?",
          "Can you use the verb {w} in a sentence?"]
ADJ_Q = ["What does {w} mean?", "What is the opposite of {w}?", "What is something that is {w}?"]


def wordnet_questions(wn, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    by_offset = {s.offset: s for s in wn["noun"]}
    common_nouns = [s for s in wn["noun"] if not any(p == "@i" for p, _ in s.pointers)]
    out = []
    for s in common_nouns:
        w = s.lemmas[0]
        other = rng.choice(common_nouns).lemmas[0]
        q = rng.choice(NOUN_Q).format(a=_article(w), w=w, a2=_article(other), w2=other)
        out.append((q, "wordnet-questions"))
    for s in wn["noun"]:  # named people and places
        if not any(p == "@i" for p, _ in s.pointers):
            continue
        name = s.lemmas[0]
        if s.lex_file == LEX_PERSON:
            out.append((rng.choice(["Who was {n}?", "What is {n} known for?", "Tell me about {n}."])
                        .format(n=name), "wordnet-questions"))
        elif s.lex_file == LEX_LOCATION:
            holo = [by_offset[t].lemmas[0] for p, t in s.pointers if p == "#p" and t in by_offset]
            if holo and rng.random() < 0.5:
                q = rng.choice(["Is {n} in {h}?", "Which part of {h} is {n} in?", "How far is {n} from the capital of {h}?"])
                out.append((q.format(n=name, h=holo[0]), "wordnet-questions"))
            else:
                out.append((rng.choice(["Where is {n}?", "What is {n} famous for?", "What is the climate like in {n}?"])
                            .format(n=name), "wordnet-questions"))
        else:
            out.append((f"What was {name}?" if "(" in s.gloss else f"What is {name}?", "wordnet-questions"))
    for s in wn["verb"]:
        out.append((rng.choice(VERB_Q).format(w=s.lemmas[0]), "wordnet-questions"))
    adjs = {s.offset: s for s in wn["adj"]}
    for s in wn["adj"]:
        antonyms = [adjs[t].lemmas[0] for p, t in s.pointers if p == "!" and t in adjs]
        if antonyms:
            out.append((f"Is {s.lemmas[0]} the opposite of {antonyms[0]}?" if rng.random() < 0.3
                        else f"What is the opposite of {s.lemmas[0]}?", "wordnet-questions"))
        else:
            out.append((rng.choice(ADJ_Q).format(w=s.lemmas[0]), "wordnet-questions"))
    return out


PLACE_MENTIONS = ["We spent a week in {n} last summer.", "She grew up in {n}.", "Have you ever been to {n}?",
                  "My cousin works in {n} now.", "The weather in {n} was lovely.", "He wrote to us from {n}.",
                  "I have always wanted to visit {n}.", "The train to {n} leaves at noon.",
                  "They talked about {n} all evening.", "There is a famous market in {n}."]
PERSON_MENTIONS = ["I read a book about {n}.", "Our teacher talked about {n} today.", "Have you heard of {n}?",
                   "Many people admire {n}.", "There is a statue of {n} in the square.",
                   "She wrote an essay on {n}.", "What did {n} do?", "The film is about the life of {n}."]


def _entity_gloss(gloss: str) -> str:
    """The first clause of an instance's gloss, without the bracketed dates or field."""
    first = re.sub(r"\([^)]*\)", "", gloss.split(";")[0]).strip(" ,")
    return " ".join(first.split())


def _name_article(phrase: str) -> str:
    return "a" if phrase.lower().startswith(("uni", "eu")) else _article(phrase)  # "a United States writer"


def wordnet_entities(wn, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    by_offset = {s.offset: s for s in wn["noun"]}
    out = []
    for s in wn["noun"]:
        kinds = [by_offset[t].lemmas[0] for p, t in s.pointers if p == "@i" and t in by_offset]
        if not kinds or s.lex_file not in (LEX_PERSON, LEX_LOCATION):
            continue
        names = [n for n in s.lemmas if not n.lower().startswith("capital of")]
        name = names[0] if names else s.lemmas[0]
        full = max(names, key=len) if s.lex_file == LEX_PERSON and names else name  # "William Shakespeare"
        gloss, kind = _entity_gloss(s.gloss), kinds[0]
        person = s.lex_file == LEX_PERSON
        said = []
        if gloss:
            lead = gloss if gloss.split()[0].lower() in ("a", "an", "the") else f"{_name_article(gloss)} {gloss}"
            said.append(f"{full} {'was' if person else 'is'} {lead}")
        said.append(f"{name} {'was' if person else 'is'} {_name_article(kind)} {kind}")
        wholes = [by_offset[t].lemmas[0] for p, t in s.pointers if p == "#p" and t in by_offset]
        if wholes:
            said.append(f"{name} is in {wholes[0]}")
        parts = sum(p in ("%p", "#p", "-c", ";c") for p, _ in s.pointers)  # prominence
        templates = PERSON_MENTIONS if person else PLACE_MENTIONS
        for template in rng.sample(templates, 1 + min(4, parts // 3)):
            said.append(template.format(n=name))
        out += [(tidy(t), "wordnet-entities") for t in said]
    return out


def wordnet_words(wn, root: Path = WORDNET_DIR) -> list[tuple[str, str]]:
    """Lemmas of up to three words seen in WordNet's sense-tagged corpus, each said on its own."""
    lemmas = {line.split("%", 1)[0].replace("_", " ")
              for line in (root / "cntlist.rev").read_text(encoding="latin-1").splitlines()}
    return [(tidy(w), "wordnet-words") for w in sorted(lemmas) if 1 <= len(w.split()) <= 3]


SOURCES = {"wordnet-examples": wordnet_examples, "wordnet-definitions": wordnet_definitions,
           "wordnet-questions": wordnet_questions, "wordnet-entities": wordnet_entities,
           "wordnet-words": wordnet_words}
MIN_WORDS = {"wordnet-words": 1}  # the other sources are sentences of at least 3 words


def usable(text: str, min_words: int = 3, max_words: int = 30, max_chars: int = 200) -> bool:
    n = len(text.split())
    return min_words <= n <= max_words and len(text) <= max_chars and bool(ALLOWED.match(text))


def collect(weights: dict[str, float], total: int, seed: int = 0,
            exclude: set[str] = frozenset()) -> list[tuple[str, str]]:
    """`total` distinct (text, source) pairs mixed by `weights`, shuffled reproducibly.

    A source that runs short gives its remainder to the others. `exclude` holds texts (e.g. the
    evaluation questions) that must never be spoken in training; compared case-insensitively.
    """
    weights = {name: w for name, w in weights.items() if w > 0}  # weight 0: not drawn from at all
    wn = read_wordnet()
    rng = random.Random(seed)
    banned = {t.lower().strip(" ?.!") for t in exclude}
    pools = {}
    for name in weights:
        seen, pool = set(), []
        for text, src in SOURCES[name](wn):
            key = text.lower().strip(" ?.!")
            if usable(text, MIN_WORDS.get(name, 3)) and key not in seen and key not in banned:
                seen.add(key)
                pool.append((text, src))
        rng.shuffle(pool)
        pools[name] = pool
    norm = sum(weights.values())
    want = {n: round(total * w / norm) for n, w in weights.items()}
    chosen, taken = [], set()
    for name in sorted(pools, key=lambda n: len(pools[n]) - want[n]):  # short pools first
        got = [p for p in pools[name] if p[0].lower() not in taken][:want[name]]
        taken |= {p[0].lower() for p in got}
        chosen += got
        deficit = want[name] - len(got)
        rest = [n for n in want if n not in {c[1] for c in chosen} and n != name]
        for n in rest:  # hand the shortfall on
            want[n] += deficit // max(1, len(rest))
    rng.shuffle(chosen)
    return chosen[:total]


def source_counts(texts: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, src in texts:
        counts[src] = counts.get(src, 0) + 1
    return counts
