"""The paper's evaluation protocol: constrained classification, its metrics, its datasets (local
fixtures in each hub schema), and an end-to-end run of a tiny DiVA through `--protocol paper`."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from paper_helpers import llama3_tokenizer, tiny_llama3_diva, tone

from diva.assistants.registry import ASSISTANTS, AssistantSpec
from diva.generation import extra_logits_processors
from eval import paper_data, paper_metrics, paper_run
from eval import run as runner
from eval.constrained import AllowOnlyTokens, LabelTokens
from eval.paper_scoring import score_paper
from eval.paper_tasks import PAPER_TASKS

FIXTURES = Path(__file__).parent / "fixtures" / "paper"


def load(name, **kw):
    return PAPER_TASKS[name].load(data_dir=str(FIXTURES / name), **kw)


# ---- label-constrained decoding ------------------------------------------------------------

def test_allow_only_tokens_masks_every_other_token():
    scores = torch.randn(2, 50)
    scores[:, 7] = 100.0  # the unconstrained choice
    mask = AllowOnlyTokens([3, 11])
    out = mask(torch.zeros(2, 1, dtype=torch.long), scores.clone())
    assert mask.calls == 1
    assert torch.isinf(out[:, [i for i in range(50) if i not in (3, 11)]]).all()
    assert torch.equal(out[:, [3, 11]], scores[:, [3, 11]])
    assert set(out.argmax(-1).tolist()) <= {3, 11}


def test_label_first_tokens_and_back():
    tok = llama3_tokenizer()
    iemocap = LabelTokens(tok, list(PAPER_TASKS["iemocap"].labels))
    assert [tok.decode([i]) for i in iemocap.ids] == ["Ang", "H", "Neutral", "Sad"]
    assert iemocap.label("H") == "Happiness" and iemocap.label(" Sad") == "Sadness"
    assert LabelTokens(tok, list(PAPER_TASKS["meld"].labels)).label("Dis") == "Disgust"
    with pytest.raises(ValueError, match="first token"):
        LabelTokens(tok, ["Sad", "Sadness"])
    with pytest.raises(ValueError, match="not the first token"):
        iemocap.label("Happiness")


@pytest.fixture(scope="module")
def assistant():
    from diva.assistants.diva import DivaAssistant
    return DivaAssistant("tiny-llama3-diva", tiny_llama3_diva())


@pytest.fixture(scope="module")
def chatml_assistant():
    """Needs no optional package: the tiny ChatML tokenizer of diva.testing."""
    from diva.assistants.diva import DivaAssistant
    from diva.testing import tiny_diva
    return DivaAssistant("tiny-chatml-diva", tiny_diva(n_queries=4))


@pytest.mark.parametrize("which,words", [("assistant", ["Yes", "No"]), ("chatml_assistant", ["Paris", "Hello"])])
def test_constrained_decoding_never_emits_a_non_label(which, words, request):
    assistant = request.getfixturevalue(which)
    tok = assistant.tokenizer
    clips = [tone(300 + 40 * i) for i in range(4)]
    prompts = ["\n" + "Respond whether the input is sarcastic."] * 4
    free = assistant.generate(clips, prompts, max_new_tokens=1)
    labels = LabelTokens(tok, words)
    assert not any(t.strip() in labels.by_text for t in free)  # left alone it answers something else
    mask = labels.processor()
    with extra_logits_processors(mask):
        constrained = assistant.generate(clips, prompts, max_new_tokens=1)
    assert mask.calls == 1 and all(labels.label(t) in words for t in constrained)
    # and it is the likelier of the two allowed tokens
    with torch.no_grad():
        embeds, attention = assistant.model.speech_inputs(clips, prompts)
        logits = assistant.llm(inputs_embeds=embeds, attention_mask=attention).logits[:, -1]
    best = logits[:, labels.ids].argmax(-1).tolist()
    assert [labels.label(t) for t in constrained] == [labels.labels[b] for b in best]
    assert assistant.generate(clips[:1], prompts[:1], max_new_tokens=1) == free[:1]  # the mask is gone


# ---- metrics ---------------------------------------------------------------------------------

def test_mean_of_sentence_bleu_checked_by_hand():
    from sacrebleu.metrics import BLEU
    # 1- to 4-gram matches 5/6, 3/5, 2/4, 1/3, same length: BLEU = (5/6*3/5*2/4*1/3)^(1/4)
    by_hand = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert paper_metrics.sentence_bleu("the cat sat on the mat", "the cat sat on a mat", "de") == \
        pytest.approx(by_hand, abs=1e-9)
    pairs = [("the cat sat on the mat", "the cat sat on a mat"),
             ("Guten Morgen , liebe Welt .", "Guten Morgen , Welt ."), ("ja", "nein danke")]
    alone = [BLEU(trg_lang="de").corpus_score([h], [[r]]).score for h, r in pairs]
    mean = paper_metrics.mean_row([paper_metrics.sentence_bleu(h, r, "de") for h, r in pairs], 1.0, 0)
    assert mean["value"] == pytest.approx(np.mean(alone)) and mean["n"] == 3
    corpus = BLEU(trg_lang="de").corpus_score([h for h, _ in pairs], [[r for _, r in pairs]]).score
    assert abs(mean["value"] - corpus) > 1  # the paper's aggregate is not corpus BLEU
    assert paper_metrics.sentence_bleu("我们今天去公园。", "我们今天去公园。", "zh") == pytest.approx(100.0)
    # no effective order, as in the paper: a sentence shorter than 4 tokens scores 0 even when exact
    assert paper_metrics.sentence_bleu("早上好", "早上好", "zh") == 0.0


class FakeMatcher:
    """CFMatcher's interface: get_scores(golds, prediction, question) -> {gold: {prediction: p}}."""

    def get_scores(self, golds, prediction, question):
        if prediction == "boom":
            raise RuntimeError("classifier failed")
        return {g: {prediction: 0.9 if g.lower() in prediction.lower() else 0.2 + 0.01 * len(g)} for g in golds}


def test_qa_score_is_the_best_gold_and_failed_items_are_dropped():
    task = PAPER_TASKS["sdqa"]
    items = [it for it in load("sdqa") if it.subset == "usa"]
    assert [it.reference for it in items] == [["Paris"], ["Jupiter", "planet Jupiter"]]
    records, rows = score_paper(task, items, ["Saturn", "boom"], matcher=FakeMatcher())
    assert records[0]["score"] == pytest.approx(0.25)          # only gold "Paris": 0.2 + 0.05
    assert records[1]["score"] is None                          # scoring raised: dropped
    usa = next(r for r in rows if r["subset"] == "usa")
    assert usa["metric"] == "panda" and usa["n"] == 1 and usa["value"] == pytest.approx(25.0)
    _, rows = score_paper(task, items, ["Saturn", "It is Jupiter."], matcher=FakeMatcher())
    best = {r["subset"]: r for r in rows}["usa"]
    assert best["n"] == 2 and best["value"] == pytest.approx(100 * (0.25 + 0.9) / 2)
    assert paper_metrics.best_gold_score(FakeMatcher(), ["Jupiter", "planet Jupiter"], "Mars", "q") == \
        pytest.approx(0.2 + 0.01 * len("planet Jupiter"))       # max over golds


def test_missing_qa_metrics_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_qa_metrics(name, *args, **kw):
        if name.startswith("qa_metrics"):
            raise ImportError("No module named 'qa_metrics'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_qa_metrics)
    with pytest.raises(paper_metrics.MetricUnavailable, match="pip install qa-metrics"):
        paper_metrics.load_cfmatcher()


def test_classification_accuracy_and_weighted_f1():
    task = PAPER_TASKS["iemocap"]
    items = load("iemocap")
    labels = ["Anger", "Happiness", "Happiness", "Sadness"]  # gold: angry, happy, neutral, sad
    records, rows = score_paper(task, items, ["Ang", "H", "H", "Sad"], labels)
    assert [r["score"] for r in records] == [1.0, 1.0, 0.0, 1.0]
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["accuracy"]["value"] == pytest.approx(75.0)
    from sklearn.metrics import f1_score
    gold, pred = ["angry", "happy", "neutral", "sad"], ["angry", "happy", "happy", "sad"]
    assert by_metric["weighted_f1"]["value"] == pytest.approx(100 * f1_score(gold, pred, average="weighted"))
    _, rows = score_paper(PAPER_TASKS["mustard"], load("mustard"), ["Yes", "Yes", "No"], ["Yes", "Yes", "No"])
    assert [r["metric"] for r in rows] == ["accuracy"]  # sarcasm/humour: accuracy only, as the figure


# ---- the paper's datasets, prompts and decoding -----------------------------------------------

def test_paper_loaders_on_fixtures():
    hey = load("heysquad")
    assert [it.item_id for it in hey] == ["h1", "h3"]  # h2 has no answers
    assert hey[0].reference == ["Shakespeare", "William Shakespeare"] and hey[0].fields["question"] == "Who wrote Hamlet?"
    sd = load("sdqa")
    assert len(sd) == 2 * 11 and {it.item_id.split(":")[0] for it in sd} == {"-101", "303"}
    assert len(load("sdqa", limit=1)) == 11
    assert [it.reference for it in load("iemocap")] == ["angry", "happy", "neutral", "sad"]
    assert [it.reference for it in load("meld")] == list(paper_data.MELD_LABELS)
    assert [(it.item_id, it.reference) for it in load("mustard")] == [("0", "Yes"), ("1", "No"), ("2", "Yes")]
    assert [it.reference for it in load("urfunny")] == ["Yes", "No"]
    cv = load("covost2")
    assert sorted({it.subset for it in cv}) == ["en-ar", "en-de", "en-id", "en-ja", "en-ta", "en-tr", "en-zh"]
    zh = [it for it in cv if it.subset == "en-zh"]
    assert zh[0].item_id == "common_voice_en_1:zh" and zh[0].reference == "早上好。"
    from eval.loaders import audio_array
    assert audio_array(cv[0].audio).size == 4000


def test_paper_prompts_and_decoding():
    cv = next(it for it in load("covost2") if it.subset == "en-zh")
    assert PAPER_TASKS["covost2"].prompt(cv) == \
        "You are a helpful assistant. Translate the inputs from English to Simplified Chinese.\n"
    assert PAPER_TASKS["sdqa"].prompt(None) == PAPER_TASKS["heysquad"].prompt(None) == \
        "You are a helpful assistant. Give your answers as a simple single sentence.\n"
    assert PAPER_TASKS["meld"].prompt(None) == ("\nRespond in a single word what emotion the input exhibits.\n"
                                                "If there is no clear emotion, respond 'Neutral'.")
    assert "the audio represents" in PAPER_TASKS["iemocap"].prompt(None)
    assert PAPER_TASKS["urfunny"].prompt(None) == \
        "\nRespond whether the input is intended to be humorous. Answer with a simple yes or no."
    assert {t.max_new_tokens for t in PAPER_TASKS.values() if t.kind == "label"} == {1}
    assert {t.max_new_tokens for t in PAPER_TASKS.values() if t.kind != "label"} == {64}


# ---- end to end -------------------------------------------------------------------------------

def test_protocol_paper_runs_a_tiny_diva_end_to_end(assistant, tmp_path, monkeypatch):
    monkeypatch.setitem(ASSISTANTS, assistant.name, AssistantSpec("diva"))  # a known name, loaded as below
    monkeypatch.setattr(runner, "load_assistants", lambda names: ({assistant.name: assistant}, []))
    monkeypatch.setattr(paper_run, "load_cfmatcher", FakeMatcher)
    monkeypatch.setattr(paper_data, "COVOST_LANGUAGES",  # Japanese BLEU needs MeCab
                        {k: v for k, v in paper_data.COVOST_LANGUAGES.items() if k in ("de", "zh")})
    calls = []
    generate = assistant.generate
    monkeypatch.setattr(assistant, "generate", lambda *a, **kw: calls.append(kw) or generate(*a, **kw))
    argv = ["--protocol", "paper", "--assistant", assistant.name, "--task", "sdqa,iemocap,mustard,covost2",
            "--data-dir", str(FIXTURES), "--out", str(tmp_path), "--limit", "1", "--quiet"]
    assert runner.main(argv) == 0
    assert assistant.model.layout.style == "paper-eval"
    assert {kw["max_new_tokens"] for kw in calls} == {1, 64}
    qa = pd.read_csv(tmp_path / "qa.csv", dtype={"subset": str})
    assert set(qa["subset"]) == set(paper_data.SDQA_DIALECTS) and set(qa["metric"]) == {"panda"}
    cls = pd.read_csv(tmp_path / "classification.csv")
    assert set(zip(cls["task"], cls["metric"])) == {("iemocap", "accuracy"), ("iemocap", "weighted_f1"),
                                                    ("mustard", "accuracy")}
    st = pd.read_csv(tmp_path / "translation.csv")
    assert set(st["subset"]) == {"en-de", "en-zh"} and set(st["metric"]) == {"sentence_bleu"}
    lines = (tmp_path / "items" / "classification" / f"{assistant.name}__iemocap.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["label"] in PAPER_TASKS["iemocap"].labels and record["score"] in (0.0, 1.0)
    calls.clear()
    assert runner.main(argv) == 0 and calls == []  # every answer came from the cache
    assert "layout paper-eval" in (tmp_path / "README.md").read_text()


def test_paper_eval_layout_refuses_a_non_llama3_diva_and_layout_can_be_chosen(tmp_path, monkeypatch):
    from diva.assistants.diva import DivaAssistant
    from diva.testing import tiny_diva
    smol = DivaAssistant("tiny-chatml-diva", tiny_diva(n_queries=4))
    monkeypatch.setitem(ASSISTANTS, smol.name, AssistantSpec("diva"))
    monkeypatch.setattr(runner, "load_assistants", lambda names: ({smol.name: smol}, []))
    argv = ["--protocol", "paper", "--assistant", smol.name, "--task", "mustard", "--data-dir", str(FIXTURES),
            "--quiet", "--limit", "2"]
    assert runner.main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert "skipped: layout paper-eval" in (tmp_path / "a" / "README.md").read_text()
    assert not (tmp_path / "a" / "classification.csv").exists()
    assert runner.main(argv + ["--out", str(tmp_path / "b"), "--layout", "reference"]) == 0
    assert smol.model.layout.style == "reference"
    assert len(pd.read_csv(tmp_path / "b" / "classification.csv")) == 1
    assert runner.main(["--assistant", smol.name, "--layout", "reference", "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()
