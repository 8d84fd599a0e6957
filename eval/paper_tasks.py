"""The paper's evaluation protocol as data: per task its data, prompt, decoding and metric.

Prompts and decoding are the paper's for DiVA: greedy; QA and translation 64 new tokens with a
system-style prompt; classification ONE new token restricted to the labels' first tokens, the
prompt being "\\n" + the task prompt. The prompt goes where the layout puts it (DiVA: the
`paper-eval` layout, diva.prompt).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from diva.errors import UnknownName
from eval import paper_data
from eval.item import Item

QA_PROMPT = "You are a helpful assistant. Give your answers as a simple single sentence.\n"
TRANSLATION_PROMPT = ("You are a helpful assistant. Translate the inputs from {input_lang} "
                      "to {output_lang}.\n")
EMOTION_PROMPT = ("Respond in a single word what emotion the {what}.\n"
                  "If there is no clear emotion, respond 'Neutral'.")


@dataclass(frozen=True)
class PaperTask:
    name: str                                  # as our tasks and figures call it
    suite: str                                 # qa | classification | translation
    kind: str                                  # qa | label | translation
    source: str                                # hub id:split
    released: str                              # its folder in the released outputs (<name>_Results)
    load: Callable[..., list[Item]]            # (limit=, data_dir=) -> items
    prompt_template: str                       # formatted with Item.fields
    max_new_tokens: int
    labels: Mapping[str, str] = field(default_factory=dict)  # label word -> gold value (label tasks)
    weighted_f1: bool = False                  # the paper's figure reports weighted F1 (emotion)

    def prompt(self, item: Item) -> str:
        if self.kind == "translation":
            return self.prompt_template.format(input_lang="English", output_lang=item.fields["language"])
        return self.prompt_template

    @property
    def metric(self) -> str:
        return {"qa": "panda", "label": "accuracy", "translation": "sentence_bleu"}[self.kind]


def _label_task(name, source, released, load, prompt, labels, weighted_f1=False) -> PaperTask:
    return PaperTask(name=name, suite="classification", kind="label", source=source, released=released,
                     load=load, prompt_template="\n" + prompt, max_new_tokens=1, labels=labels,
                     weighted_f1=weighted_f1)


PAPER_TASKS: dict[str, PaperTask] = {t.name: t for t in (
    PaperTask("sdqa", "qa", "qa", "WillHeld/SD-QA:dev", "Spoken_Dialect_QA", paper_data.sdqa,
              QA_PROMPT, 64),
    PaperTask("heysquad", "qa", "qa", "yijingwu/HeySQuAD_human:validation", "non_social_HeySquad_QA",
              paper_data.heysquad, QA_PROMPT, 64),
    _label_task("iemocap", "Zahra99/IEMOCAP_Audio:session5", "IEMOCAP_emotion_recognition",
                paper_data.iemocap, EMOTION_PROMPT.format(what="audio represents"),
                {"Anger": "angry", "Happiness": "happy", "Neutral": "neutral", "Sadness": "sad"},
                weighted_f1=True),
    _label_task("meld", "DavidCombei/Wav2Vec_MELD_Audio:test", "MELD_emotion_recognition",
                paper_data.meld, EMOTION_PROMPT.format(what="input exhibits"),
                {w: w.lower() for w in ("Anger", "Disgust", "Fear", "Joy", "Neutral", "Sadness",
                                        "Surprise")}, weighted_f1=True),
    _label_task("mustard", "SALT-NLP/Mustard_sarcasm:train", "Mustard_sarcasm", paper_data.mustard,
                "Respond whether the input is sarcastic. Answer with a simple yes or no.",
                {"Yes": "Yes", "No": "No"}),
    _label_task("urfunny", "SALT-NLP/URFunny_humor:train", "URFunny_humor", paper_data.urfunny,
                "Respond whether the input is intended to be humorous. Answer with a simple yes or no.",
                {"Yes": "Yes", "No": "No"}),
    PaperTask("covost2", "translation", "translation", "WillHeld/covost2:en_<lang>:validation",
              "COVOST_translation", paper_data.covost2, TRANSLATION_PROMPT, 64),
)}


def select_paper_tasks(names: list[str] | None = None, suite: str = "all") -> list[PaperTask]:
    if names:
        for name in names:
            if name not in PAPER_TASKS:
                raise UnknownName("--protocol paper task", name, PAPER_TASKS)
        return [PAPER_TASKS[n] for n in names]
    return [t for t in PAPER_TASKS.values() if suite == "all" or t.suite == suite]
