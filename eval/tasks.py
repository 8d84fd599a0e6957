"""Tasks as data, registered by name.

A task names its loader, its prompts (each with an id), what the target is, how it is scored
(`kind` -> `eval.scoring`) and how free text is normalised into a label. Real tasks load the
paper's datasets by hub id (network needed); offline tasks are their counterparts spoken by the
held-out TEST voices, so the whole harness runs here.

Prompt templates are formatted with `Item.fields` (`{context}`, `{language}`) and go into the
user turn before the audio (or before the transcript in the text modality); None means no
prompt at all, as in DiVA's training.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from diva.errors import UnknownName
from eval import loaders, offline, real_speech
from eval.item import Item

SUITES = ("qa", "classification", "translation", "asr")


@dataclass(frozen=True)
class Task:
    name: str
    suite: str                                   # qa | classification | translation | asr
    kind: str                                    # qa | instruction | label | translation | asr (eval.scoring)
    load: Callable[..., list[Item]]              # (limit=, data_dir=) -> items
    prompts: Mapping[str, str | None]            # prompt id -> template
    prompt_id: str                               # the default prompt
    source: str                                  # hub id or committed data file
    offline: bool                                # runs without the network
    target: str                                  # what the reference is, in words
    labels: tuple[str, ...] = ()                 # label tasks: the canonical labels
    vocabulary: Mapping[str, str] = field(default_factory=dict)  # answer word -> label
    max_new_tokens: int = 48
    compare_to_text_mini: bool = False           # spoken-qa: agreement with text-mini's answers
    selection: bool = False                      # a set for choosing options, run only when named
    named_only: bool = False                     # run only when named (held-out and real-speech sets)
    notes: str = ""

    def prompt(self, item: Item, prompt_id: str | None = None) -> str | None:
        template = self.prompts[prompt_id or self.prompt_id]
        return None if template is None else template.format(**item.fields)


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.suite not in SUITES:
        raise ValueError(f"{task.name}: unknown suite {task.suite!r}")
    if task.prompt_id not in task.prompts:
        raise ValueError(f"{task.name}: default prompt {task.prompt_id!r} is not among its prompts")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise UnknownName("task", name, TASKS)
    return TASKS[name]


def select(suite: str = "all", names: list[str] | None = None, include_real: bool = False) -> list[Task]:
    """Tasks of a suite ("all" for every suite); named tasks are taken as asked, real or not."""
    if names:
        return [get_task(n) for n in names]
    return [t for t in TASKS.values()
            if (suite == "all" or t.suite == suite) and (t.offline or include_real)
            and not (t.selection or t.named_only)]


# ---- label vocabularies (label normalisation) -----------------------------------------------
YES_NO = {"yes": "yes", "no": "no"}
IEMOCAP_WORDS = {"angry": "ang", "anger": "ang", "happy": "hap", "happiness": "hap",
                 "joy": "hap", "excited": "hap", "neutral": "neu", "sad": "sad", "sadness": "sad"}
MELD_LABELS = ("neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise")
MELD_WORDS = {**{label: label for label in MELD_LABELS}, "happy": "joy", "happiness": "joy",
              "sad": "sadness", "angry": "anger", "afraid": "fear", "scared": "fear",
              "fearful": "fear", "disgusted": "disgust", "surprised": "surprise"}

# ---- offline counterparts -------------------------------------------------------------------
register(Task(
    name="spoken-qa", suite="qa", kind="qa", load=offline.spoken_qa,
    prompts={"none": None, "short": "Answer the question in a few words."}, prompt_id="none",
    source="eval/data/spoken_qa.jsonl", offline=True, max_new_tokens=32,
    target="short factual answer; any listed alias counts", compare_to_text_mini=True,
    notes="accuracy = an accepted answer appears in the response (whole words, SQuAD-normalised)"))

register(Task(
    name="spoken-qa-select", suite="qa", kind="qa", load=offline.spoken_qa_select,
    prompts={"none": None, "short": "Answer the question in a few words."}, prompt_id="none",
    source="eval/data/spoken_qa_select.jsonl", offline=True, max_new_tokens=32,
    target="short factual answer; any listed alias counts", compare_to_text_mini=True, selection=True,
    notes="the selection set: new questions spoken by VALID voices, for choosing training options "
          "and checkpoints; run only when named. Subsets: set-a, its first 113 questions; "
          "set-b, the 95 added later"))

register(Task(
    name="spoken-qa-unheard", suite="qa", kind="qa", load=offline.spoken_qa_unheard,
    prompts={"none": None, "short": "Answer the question in a few words."}, prompt_id="none",
    source="eval/data/spoken_qa_unheard.jsonl", offline=True, max_new_tokens=32,
    target="short factual answer; any listed spelling counts", compare_to_text_mini=True,
    notes="questions made from bsdgames' quiz facts (eval/quiz.py) that text-mini answers as text, "
          "spoken by the UNHEARD voices (diva/voices.py); subset = kind of fact. Never used to train "
          "or choose anything", named_only=True))

# ---- real human speech (Debian's Asterisk prompts; skipped when not installed) -------------
register(Task(
    name="real-speech-asr", suite="asr", kind="asr", load=real_speech.real_speech_asr,
    prompts={"none": None}, prompt_id="none", source="Debian asterisk-core-sounds-en-g722",
    offline=True, target="the prompt's transcript",
    notes="what each assistant heard (the cascade's transcript, DiVA's bridge reading) against "
          "the transcript of one professional speaker's telephone prompts; subsets word / prompt "
          "(<= 10 s) / long (> 10 s)", named_only=True))

register(Task(
    name="real-speech-instructions", suite="qa", kind="instruction",
    load=real_speech.real_speech_instructions, prompts={"none": None}, prompt_id="none",
    source="Debian asterisk-core-sounds-en-g722", offline=True, max_new_tokens=32,
    target="no gold answer: text-mini's reply to the transcript", compare_to_text_mini=True,
    notes="the prompts that ask or tell the caller something (e.g. \"Please enter your password "
          "followed by the pound key.\"), spoken by a person", named_only=True))

register(Task(
    name="spoken-sentiment", suite="classification", kind="label", load=offline.spoken_sentiment,
    prompts={"labels-v1": "Is the sentiment of the following sentence positive or negative? "
                          "Answer with one word: positive or negative."},
    prompt_id="labels-v1", source="eval/data/spoken_sentiment.jsonl", offline=True,
    target="sentiment label", labels=("positive", "negative"),
    vocabulary={"positive": "positive", "negative": "negative"}, max_new_tokens=12))

register(Task(
    name="spoken-translation", suite="translation", kind="translation",
    load=offline.spoken_translation,
    prompts={"translate-v1": "Translate the following English sentence into {language}. "
                             "Reply with the translation only."},
    prompt_id="translate-v1", source="eval/data/spoken_translation.jsonl", offline=True,
    target="reference translation (fr, es, de)", max_new_tokens=40))

# ---- the paper's tasks (hub datasets) -------------------------------------------------------
register(Task(
    name="heysquad", suite="qa", kind="qa", load=loaders.heysquad,
    prompts={"context-v1": "Answer the question about this passage in a few words.\n"
                           "Passage: {context}\nQuestion:",
             "none": None},
    prompt_id="context-v1", source="yijingwu/HeySQuAD_human:validation", offline=False,
    target="SQuAD answer spans", max_new_tokens=48,
    notes="PANDA (PEDANT) when qa-metrics loads, else SQuAD exact match and token F1"))

register(Task(
    name="sdqa", suite="qa", kind="qa", load=loaders.sdqa, prompts={"none": None},
    prompt_id="none", source="WillHeld/SD-QA:dev", offline=False,
    target="TyDi-QA English minimal answers", max_new_tokens=48,
    notes="subset = dialect; PANDA when available, else SQuAD EM / token F1"))

register(Task(
    name="iemocap", suite="classification", kind="label", load=loaders.iemocap,
    prompts={"emotion-v1": "What emotion does the speaker express? "
                           "Answer with one word: angry, happy, neutral or sad."},
    prompt_id="emotion-v1", source="Zahra99/IEMOCAP_Audio:session5", offline=False,
    target="emotion (ang, hap, neu, sad)", labels=("ang", "hap", "neu", "sad"),
    vocabulary=IEMOCAP_WORDS, max_new_tokens=16, notes="audio only: no transcripts"))

register(Task(
    name="meld", suite="classification", kind="label", load=loaders.meld,
    prompts={"emotion-v1": "What emotion does the speaker express? Answer with one word: "
                           "neutral, joy, sadness, anger, fear, disgust or surprise."},
    prompt_id="emotion-v1", source="TwinkStart/MELD:test", offline=False,
    target="emotion (7 MELD labels)", labels=MELD_LABELS, vocabulary=MELD_WORDS,
    max_new_tokens=16))

register(Task(
    name="mustard", suite="classification", kind="label", load=loaders.mustard,
    prompts={"sarcasm-v1": "Is the speaker being sarcastic? Answer yes or no."},
    prompt_id="sarcasm-v1", source="DynamicSuperb/SarcasmDetection_Mustard:test",
    offline=False, target="sarcastic (yes/no)", labels=("yes", "no"),
    vocabulary={**YES_NO, "sarcastic": "yes", "sarcasm": "yes", "sincere": "no"},
    max_new_tokens=16))

register(Task(
    name="urfunny", suite="classification", kind="label", load=loaders.urfunny,
    prompts={"humor-v1": "Is this punchline meant to be funny? Answer yes or no."},
    prompt_id="humor-v1", source="SALT-NLP/URFunny_humor:test", offline=False,
    target="humorous (yes/no)", labels=("yes", "no"),
    vocabulary={**YES_NO, "funny": "yes", "humorous": "yes"}, max_new_tokens=16))

register(Task(
    name="covost2", suite="translation", kind="translation", load=loaders.covost2,
    prompts={"translate-v1": "Translate the following English sentence into {language}. "
                             "Reply with the translation only."},
    prompt_id="translate-v1", source="fixie-ai/covost2:en_{ar,de,id,ja,ta,tr,zh-CN}:test",
    offline=False, target="reference translation", max_new_tokens=96,
    notes="subset = target language; sacrebleu tokenizer per target (zh: zh, ja: ja-mecab or char)"))
