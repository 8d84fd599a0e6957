"""The runner: cache and resume bookkeeping, the results schema, scoring on both modalities.

Bookkeeping (calls counted, an interrupted run) uses a tiny test-local assistant; the results
schema is checked on a real run of text-mini on the offline sets.
"""
import json

import numpy as np
import pandas as pd
import pytest

from diva.assistants.base import Reply, VoiceAssistant
from diva.assistants.registry import ASSISTANTS, AssistantSpec
from diva.errors import UsageError
from eval import run as runner
from eval import scoring, tasks
from eval.cache import AnswerCache
from eval.item import Item
from eval.report import COLUMNS


class CountingAssistant(VoiceAssistant):
    """Answers "Paris" (or "positive"), counts requests, and can fail after some batches."""
    name = "counting"

    def __init__(self, fail_after_batches: int | None = None):
        super().__init__()
        self.requests = 0
        self.batches = 0
        self.fail_after = fail_after_batches
        self.options = []

    def _generate(self, requests, options):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.batches += 1
        self.requests += len(requests)
        self.options.append(options)
        return [Reply(text="The answer is Paris.", transcript="what it heard") if r.transcript is None
                else Reply(text="Paris") for r in requests]


def tone(i: int) -> np.ndarray:
    t = np.arange(8000) / 16000
    return (0.3 * np.sin(2 * np.pi * (200 + 10 * i) * t)).astype(np.float32)


def toy_items(limit=None, data_dir=None):
    items = [Item(item_id=f"q{i}", reference=["Paris"] if i % 2 == 0 else ["Rome"],
                  transcript=f"Question number {i}?", audio=tone(i)) for i in range(10)]
    return items[:limit]


TOY = tasks.Task(name="toy-qa", suite="qa", kind="qa", load=toy_items, prompts={"none": None},
                 prompt_id="none", source="test", offline=True, target="city", max_new_tokens=8)


@pytest.fixture
def toy_task(monkeypatch):
    monkeypatch.setitem(tasks.TASKS, TOY.name, TOY)
    return TOY


def run_with(assistant, tmp_path, monkeypatch, *extra):
    monkeypatch.setitem(ASSISTANTS, assistant.name, AssistantSpec("text"))  # a known name, loaded as below
    monkeypatch.setattr(runner, "load_assistants", lambda names: ({assistant.name: assistant}, []))
    return runner.main(["--assistant", assistant.name, "--task", "toy-qa", "--batch-size", "3",
                        "--out", str(tmp_path / "out"), "--quiet", *extra])


def test_resume_after_interruption_recomputes_nothing(toy_task, tmp_path, monkeypatch):
    flaky = CountingAssistant(fail_after_batches=2)  # audio: 10 items in batches of 3
    with pytest.raises(KeyboardInterrupt):
        run_with(flaky, tmp_path, monkeypatch)
    assert flaky.requests == 6
    assert len(AnswerCache(tmp_path / "out" / "cache.sqlite")) == 6  # written batch by batch

    resumed = CountingAssistant()
    assert run_with(resumed, tmp_path, monkeypatch) == 0
    assert resumed.requests == 4 + 10  # the 4 audio answers left, then all 10 text answers
    again = CountingAssistant()
    run_with(again, tmp_path, monkeypatch)
    assert again.requests == 0  # everything cached

    # a different prompt or generation setting is a different answer
    monkeypatch.setitem(tasks.TASKS, "toy-qa", tasks.Task(**{**TOY.__dict__, "max_new_tokens": 9}))
    changed = CountingAssistant()
    run_with(changed, tmp_path, monkeypatch, "--modality", "text")
    assert changed.requests == 10


def test_batches_respect_batch_size_and_modality(toy_task, tmp_path, monkeypatch):
    a = CountingAssistant()
    run_with(a, tmp_path, monkeypatch, "--modality", "audio", "--limit", "7")
    assert (a.requests, a.batches) == (7, 3)
    df = pd.read_csv(tmp_path / "out" / "qa.csv")
    assert set(df["modality"]) == {"audio"}
    row = df[(df.metric == "accuracy") & (df.subset == "all")].iloc[0]
    assert row["n"] == 7 and row["value"] == pytest.approx(100 * 4 / 7)  # q0 q2 q4 q6 are Paris


def test_gap_rows_are_text_minus_audio(toy_task, tmp_path, monkeypatch):
    run_with(CountingAssistant(), tmp_path, monkeypatch)
    df = pd.read_csv(tmp_path / "out" / "qa.csv")
    acc = df[(df.metric == "accuracy") & (df.subset == "all")].set_index("modality")["value"]
    assert acc["gap"] == pytest.approx(acc["text"] - acc["audio"])
    assert acc["gap"] == 0.0  # both modalities answer Paris
    lines = (tmp_path / "out" / "items" / "qa" / "counting__toy-qa.jsonl").read_text().splitlines()
    assert len(lines) == 20 and {"item_id", "subset", "modality", "prediction", "reference",
                                 "score"} <= set(json.loads(lines[0]))


def test_scoring_translation_and_labels():
    items = [Item(f"t{i}:{lang}", ref, "x", subset=lang, fields={"target": lang})
             for i, (lang, ref) in enumerate([("fr", "le chat dort sur le canapé"),
                                              ("fr", "il pleut dehors ce matin"),
                                              ("de", "die katze schläft auf dem sofa")])]
    preds = ["le chat dort sur le canapé", "il fait beau", "die katze schläft auf dem sofa"]
    task = tasks.get_task("spoken-translation")
    records, found = scoring.score_items(task, items, preds)
    rows = {(r["subset"], r["metric"]): r for r in scoring.aggregate(task, items, found, seed=0, n_boot=50)}
    from eval.metrics import corpus_bleu
    fr = corpus_bleu(preds[:2], [it.reference for it in items[:2]])
    assert rows[("fr", "bleu_13a")]["value"] == pytest.approx(fr)
    assert rows[("de", "bleu_13a")]["value"] == pytest.approx(100.0)
    assert rows[("all", "bleu_mean")]["value"] == pytest.approx((fr + 100) / 2)
    assert records[0]["score"] == pytest.approx(100.0) and records[0]["tokenizer"] == "13a"

    sent = tasks.get_task("spoken-sentiment")
    items = [Item(f"s{i}", lab, "x") for i, lab in enumerate(["positive", "negative", "negative"])]
    records, found = scoring.score_items(sent, items, ["Positive!", "It is positive.", "I can't say"])
    rows = {r["metric"]: r["value"] for r in scoring.aggregate(sent, items, found, seed=0, n_boot=50)}
    assert rows["accuracy"] == pytest.approx(100 / 3)
    assert [r["parsed"] for r in records] == ["positive", "positive", None]


def test_results_schema_on_a_real_assistant(prepared_assets, tmp_path, monkeypatch):
    """text-mini (the real SmolLM2) on two offline tasks: CSV columns, JSONL, README."""
    monkeypatch.setenv("DIVA_EVAL_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    assert runner.main(["--assistant", "text-mini", "--task", "spoken-qa,spoken-sentiment",
                        "--limit", "2", "--out", str(out), "--quiet", "--seed", "3"]) == 0
    qa = pd.read_csv(out / "qa.csv")
    assert list(qa.columns) == COLUMNS
    assert set(qa["metric"]) == {"accuracy", "identical_to_text", "first_token_agreement",
                                 "repeats_question"}
    assert set(qa["modality"]) == {"text"} and set(qa["subset"]) == {"all"}
    # text-mini is its own reference: identical by construction
    assert qa.loc[qa.metric == "identical_to_text", "value"].iloc[0] == 100.0
    assert (qa["seed"] == 3).all() and qa["n"].eq(2).all()
    cls = pd.read_csv(out / "classification.csv")
    assert set(cls["metric"]) == {"accuracy", "weighted_f1"}
    rec = json.loads((out / "items" / "qa" / "text-mini__spoken-qa.jsonl").read_text().splitlines()[0])
    assert {"item_id", "subset", "modality", "prediction", "reference", "score",
            "identical_to_text", "first_token_agreement", "repeats_question"} <= set(rec)
    readme = (out / "README.md").read_text()
    assert "| text-mini | text |" in readme and "spoken-sentiment" in readme


def test_text_modality_is_shared_by_backends_with_the_same_llm():
    # text-mini, cascade-mini and DiVA-mini read a transcript with the same frozen LLM and code
    assert runner.text_identity("text-mini") == runner.text_identity("cascade-mini") is not None
    assert runner.text_identity("diva-mini") == runner.text_identity("text-mini")  # from its config.json
    assert runner.text_identity("qwen2-audio-7b") is None
    assert runner.text_identity("counting") is None


def test_a_checkpoint_folder_can_be_evaluated_under_its_own_name():
    from diva.assistants.registry import ASSISTANTS
    folder = runner.REPO_ROOT / "checkpoints" / "diva-mini"
    try:
        runner.register_checkpoints([f"my-run={folder}"])
        assert ASSISTANTS["my-run"].backend == "diva"
        assert runner.assistant_fingerprint("my-run") == runner.assistant_fingerprint("diva-mini") != ""
        assert runner.text_identity("my-run") == runner.text_identity("text-mini")
    finally:
        ASSISTANTS.pop("my-run", None)
    for bad in ("no-equals-sign", f"x={folder.parent}"):  # not NAME=FOLDER, or no config.json there
        with pytest.raises(UsageError, match="NAME=FOLDER"):
            runner.register_checkpoints([bad])
    whisper = runner.REPO_ROOT / "checkpoints" / "diva-mini-whisper"
    try:  # the same folder read with the LLM-rescored beam: its own options, its own cache entries
        runner.register_checkpoints([f"greedy={whisper}", f"beam={whisper}"], llm_beam=["beam"])
        assert ASSISTANTS["beam"].options == {"bridge_decode": "llm-beam"} and ASSISTANTS["greedy"].options == {}
        assert runner.assistant_fingerprint("beam") != runner.assistant_fingerprint("greedy") != ""
    finally:
        ASSISTANTS.pop("greedy", None), ASSISTANTS.pop("beam", None)
    with pytest.raises(UsageError, match="--llm-beam other"):
        runner.register_checkpoints([f"my-run={folder}"], llm_beam=["other"])
    ASSISTANTS.pop("my-run", None)


def test_a_run_on_fewer_items_shows_its_n_in_the_table():
    from eval.report import suite_table
    rows = [dict(assistant=a, task="qa", subset="all", modality="audio", metric="accuracy", n=n,
                 value=50.0, ci_low=40.0, ci_high=60.0) for a, n in (("new", 208), ("old", 113))]
    lines = suite_table(pd.DataFrame(rows)).splitlines()
    assert lines[0] == "**qa** (n = 208)"
    assert "| new | audio | 50.0 [40.0, 60.0] |" in lines and "| old | audio | 50.0 [40.0, 60.0] (n=113) |" in lines


def items_file(tmp_path) -> list[dict]:
    path = tmp_path / "out" / "items" / "qa" / "counting__toy-qa.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_items_and_cache_keep_what_the_assistant_heard(toy_task, tmp_path, monkeypatch):
    assistant = CountingAssistant()
    assert run_with(assistant, tmp_path, monkeypatch) == 0
    heard = {r["modality"]: r.get("heard") for r in items_file(tmp_path)}
    assert heard == {"audio": "what it heard", "text": None}  # a transcript read as text hears nothing
    asked = assistant.requests
    (tmp_path / "out" / "items" / "qa" / "counting__toy-qa.jsonl").unlink()
    assert run_with(assistant, tmp_path, monkeypatch) == 0
    assert assistant.requests == asked  # all from the cache, with what was heard
    assert {r["modality"]: r.get("heard") for r in items_file(tmp_path)} == heard


def test_sampled_answers_are_seeded_and_cached_apart_from_greedy(toy_task, tmp_path, monkeypatch):
    assistant = CountingAssistant()
    assert run_with(assistant, tmp_path, monkeypatch) == 0
    greedy = assistant.requests
    assert all(o.temperature == 0 and o.max_new_tokens == TOY.max_new_tokens for o in assistant.options)
    assert run_with(assistant, tmp_path, monkeypatch, "--temperature", "0.7", "--seed", "5") == 0
    assert assistant.requests == 2 * greedy  # new keys: nothing taken from the greedy answers
    assert {(o.temperature, o.seed) for o in assistant.options[-4:]} == {(0.7, 5)}
    assert run_with(assistant, tmp_path, monkeypatch, "--temperature", "-1") == 2  # refused, nothing run


def test_a_cache_made_before_heard_is_read_and_extended(tmp_path):
    import sqlite3
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, assistant TEXT NOT NULL, task TEXT NOT NULL, "
               "item_id TEXT NOT NULL, modality TEXT NOT NULL, prompt_id TEXT NOT NULL, response TEXT NOT NULL, "
               "created REAL NOT NULL)")
    db.execute("INSERT INTO answers VALUES ('k1', 'a', 't', 'i', 'audio', 'p', 'old reply', 0)")
    db.commit()
    db.close()
    cache = AnswerCache(path)
    assert cache.get_answers(["k1"])["k1"] == ("old reply", None)
    cache.put_many([{"key": "k2", "assistant": "a", "task": "t", "item_id": "j", "modality": "audio",
                     "prompt_id": "p", "response": "new", "heard": "words"}])
    assert cache.get_answers(["k1", "k2"])["k2"].heard == "words" and cache.get_many(["k1"]) == {"k1": "old reply"}
