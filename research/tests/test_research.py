"""Tests of the research tools (probes, oracle, coverage, linear map, checkpoint soups).

    .venv/bin/python -m pytest -q research/tests
"""
import numpy as np
import pytest
import torch

from diva.testing import tiny_diva, tiny_tokenizer


def test_probe_reads_exact_embeddings_back_as_the_transcript():
    from diva.testing import tiny_diva
    from research.probe import nearest_tokens, read_back
    diva = tiny_diva(n_queries=8)
    text = "the cat sat"
    ids = diva.layout.transcript_ids(text)[:8]
    virtual = torch.zeros(8, diva.llm.config.hidden_size)
    virtual[-len(ids):] = diva.embed_ids(ids).detach()
    assert nearest_tokens(diva, virtual[-len(ids):]).tolist() == ids
    exact = read_back(diva, virtual, text)
    assert (exact["exact"], exact["tokens"]) == (len(ids), len(ids))
    shifted = torch.roll(virtual, 1, dims=0)  # every word one slot late: the reading is wrong
    late = read_back(diva, shifted, text)
    hits, n = late["exact"], late["tokens"]
    assert n == len(ids) and hits < n
    # ... but every word is still somewhere: recall anywhere stays full, slot accuracy drops
    from collections import Counter
    from research.probe import report
    seen = Counter({ids[0]: 5})  # the first token seen 5 times in training, the others never
    counts = read_back(diva, shifted, text, seen)
    assert counts["tokens"] == len(ids) and counts["anywhere"] == len(ids) and counts["exact"] == hits
    assert counts["1-9:tokens"] == 1 and counts["unseen:tokens"] == len(ids) - 1
    assert "| unseen |" in report(counts) and "| 10-99 |" not in report(counts)
    assert read_back(diva, torch.zeros_like(virtual), text)["anywhere"] <= 1


def test_probe_whisper_head_reads_connector_states_through_whispers_table():
    from diva.testing import tiny_diva
    from research.probe import Reader, probe, whisper_head_tokens
    diva = tiny_diva(n_queries=8)
    table = diva.connector.embed_tokens.weight
    with torch.no_grad():
        table.zero_()
        table[5, 0] = table[7, 1] = 1.0
    states = torch.zeros(2, table.shape[1])
    states[0, 0], states[1, 1] = 3.0, 2.0
    assert whisper_head_tokens(diva, states).tolist() == [5, 7]
    reader = Reader(diva, "whisper")  # the tiny Whisper speaks tiny_tokenizer()
    assert reader.tokenize("the cat") == reader.tokenizer(" the cat", add_special_tokens=False).input_ids
    clips = [np.zeros(16_000, np.float32) + 0.01, np.full(8_000, 0.02, np.float32)]
    counts = probe(diva, clips, ["the cat", "sat"], show=0, head="whisper")
    assert counts["tokens"] == len(reader.tokenize("the cat")) + len(reader.tokenize("sat"))
    assert 0 <= counts["wer_collapse"] and 0 <= counts["wer_drop"] and 0 <= counts["exact_collapse"] <= 1
    with pytest.raises(ValueError, match="head"):
        Reader(diva, "bert")


def test_probe_reads_slots_as_a_transcript_and_scores_its_word_errors():
    from eval.metrics import exact_transcript_share, word_error_rate
    from research.probe import slot_transcript
    tok = tiny_tokenizer()
    ids = tok(" the cat", add_special_tokens=False).input_ids
    blank = tok.eos_token_id
    slots = [blank, ids[0], ids[0], blank, *ids[1:], ids[-1]]
    assert slot_transcript(tok, slots, collapse=True) == tok.decode(ids).strip()
    assert slot_transcript(tok, slots, collapse=False) != slot_transcript(tok, slots, collapse=True)
    assert word_error_rate(["The cat."], ["the cat"]) == 0.0            # case and punctuation ignored
    assert word_error_rate(["the cat sat", "a dog"], ["the cat", "a dog"]) == 0.2
    assert exact_transcript_share(["The cat.", "a dog"], ["the cat", "a cat"]) == 0.5


def test_oracle_virtual_tokens_hold_the_transcript_embeddings():
    from research.oracle import oracle_virtual_tokens
    diva = tiny_diva(n_queries=8)
    ids = diva.layout.transcript_ids("the cat sat")[:8]
    exact = oracle_virtual_tokens(diva, "the cat sat")
    words = diva.embed_ids(ids).detach()
    torch.testing.assert_close(exact[-len(ids):], words)
    assert exact[:-len(ids)].abs().sum() == 0
    noisy = oracle_virtual_tokens(diva, "the cat sat", noise=2.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close((noisy[-len(ids):] - words).norm(dim=-1), torch.full((len(ids),), 2.0))


def test_coverage_buckets_tokens_by_training_frequency():
    from research.coverage import coverage
    layout = tiny_diva(n_queries=8).layout
    out = coverage(layout, ["the cat sat"] * 12, ["the cat sat", "zebra quagga"])
    known = set(layout.transcript_ids("the cat sat"))  # each seen 12 times (or more)
    ids = layout.transcript_ids("the cat sat") + layout.transcript_ids("zebra quagga")
    assert out["tokens"]["10-99"] == pytest.approx(sum(t in known for t in ids) / len(ids))
    assert out["tokens"]["unseen"] > 0 and out["tokens"]["1000+"] == 0
    assert out["items_by_rarest_token"] == {"1000+": 0, "100-999": 0, "10-99": 1, "1-9": 0, "unseen": 1}

def test_linear_map_check_finds_tokens_when_the_tables_are_linearly_related():
    from research.linear_map import linear_map_p_at_1, shared_token_pairs
    tok = tiny_tokenizer()
    pairs = shared_token_pairs(tok, tok, len(tok))
    assert len(pairs) == len(tok) - len(set(tok.all_special_ids)) and bool((pairs[:, 0] == pairs[:, 1]).all())
    torch.manual_seed(0)
    whisper_table = torch.randn(len(tok), 16)
    related = whisper_table @ torch.randn(16, 24)               # an exact linear relation: P@1 = 1
    assert linear_map_p_at_1(whisper_table, related, pairs, held_out=50) == 1.0
    unrelated = torch.randn(len(tok), 24)                         # none: about chance
    assert linear_map_p_at_1(whisper_table, unrelated, pairs, held_out=50) < 0.2

def test_average_checkpoints_is_the_weighted_mean_and_refuses_other_architectures(tmp_path):
    """train.average: each tensor is the weighted mean; the bridge settings carry over; a
    checkpoint with another query count is refused."""
    from diva.checkpoint import CheckpointError, read_checkpoint, save_connector
    from diva.testing import tiny_diva
    from research.average import average_checkpoints
    kw = dict(n_queries=4, projection="whisper-vocab")
    a = save_connector(tiny_diva(seed=0, **kw), tmp_path / "a")
    b = save_connector(tiny_diva(seed=1, **kw), tmp_path / "b")
    (_, sa, _), (_, sb, _) = read_checkpoint(a), read_checkpoint(b)
    assert not torch.equal(sa["query_tokens"], sb["query_tokens"])
    config, mean, raw = read_checkpoint(average_checkpoints([str(a), str(b)], tmp_path / "mean", [3, 1]))
    assert config.projection == "whisper-vocab" and raw["average_weights"] == [3, 1]
    for k in sa:
        torch.testing.assert_close(mean[k], 0.75 * sa[k] + 0.25 * sb[k])
    _, only_a, _ = read_checkpoint(average_checkpoints([str(a), str(b)], tmp_path / "only_a", [1, 0]))
    assert all(torch.equal(only_a[k], sa[k]) for k in sa)
    other = save_connector(tiny_diva(seed=2, **{**kw, "n_queries": 6}), tmp_path / "other")
    with pytest.raises(CheckpointError, match="n_queries"):
        average_checkpoints([str(a), str(other)], tmp_path / "bad")


def test_toward_whisper_moves_only_the_decoder_copy_part_of_the_way(tmp_path):
    """research.toward_whisper: each decoder-copy tensor moves the fraction toward Whisper's own
    decoder; the queries and the slot positions stay; a fraction outside (0, 1) is refused."""
    from diva.checkpoint import read_checkpoint, save_connector
    from diva.model import DiVA, DivaConfig
    from diva.models import load_whisper
    from diva.testing import save_tiny_models
    from research.toward_whisper import toward_whisper
    whisper_dir, llm_dir = save_tiny_models(tmp_path / "models")
    diva = DiVA.from_config(DivaConfig(encoder=whisper_dir, llm=llm_dir, n_queries=4, projection="whisper-vocab"))
    with torch.no_grad():
        for p in diva.connector.parameters():
            p.add_(0.5)  # a "trained" copy, away from Whisper's weights
    source = save_connector(diva, tmp_path / "trained")
    out, moved = toward_whisper(str(source), tmp_path / "moved", 0.25)
    (_, before, _), (_, after, raw) = read_checkpoint(source), read_checkpoint(out)
    whisper = load_whisper(whisper_dir)[0].model.decoder.state_dict()
    key = "connector.layers.0.fc1.weight"
    torch.testing.assert_close(after[key], 0.75 * before[key] + 0.25 * whisper["layers.0.fc1.weight"])
    assert moved > 10 and raw["toward_whisper"] == 0.25
    for kept in ("query_tokens", "connector.embed_positions.weight"):
        assert torch.equal(after[kept], before[kept])
    with pytest.raises(ValueError, match="fraction"):
        toward_whisper(str(source), tmp_path / "bad", 1.0)


def test_reading_wer_counts_errors_and_the_rare_words_found():
    from diva.assets import is_ready, resolve
    if not is_ready("whisper-tiny.en"):
        pytest.skip("whisper-tiny.en not prepared (make assets)")
    from transformers import WhisperTokenizer

    from eval.item import Item
    from research.reading_wer import rare_words, reading_wer
    tokenizer = WhisperTokenizer.from_pretrained(resolve("whisper-tiny.en"))
    assert rare_words("What is the chemical symbol for hafnium?", tokenizer) == ["hafnium"]

    class Reader:                      # an assistant whose reading drops the rare word
        name = "reader"

        def transcribe(self, audios):
            return ["what is the chemical symbol for" for _ in audios]

    noise = np.random.default_rng(0).normal(0, 0.1, 1600).astype(np.float32)
    items = [Item("a", ["Hf"], "What is the chemical symbol for hafnium?", noise)] * 3
    assert reading_wer(Reader(), items, tokenizer) == (3, 3, 21, 3, 0)
