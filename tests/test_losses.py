"""DiVA's losses on hand-computable tensors."""
import math

import torch

from train.objectives import (distillation_loss, token_alignment_loss, transcript_ce_loss, whisper_token_ce_loss,
                              whisper_token_ctc_loss)


def test_distillation_zero_when_branches_match_and_known_value():
    h = torch.randn(3, 5)
    assert distillation_loss(h, h.clone()).item() == 0.0
    a = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    t = torch.zeros(2, 2)
    assert distillation_loss(a, t).item() == 2.5          # (5 + 0) / 2: unsquared, batch mean


def test_distillation_gradient_only_on_student():
    a = torch.tensor([[1.0, 1.0]], requires_grad=True)
    t = torch.zeros(1, 2)
    distillation_loss(a, t).backward()
    torch.testing.assert_close(a.grad, torch.tensor([[1.0, 1.0]]) / math.sqrt(2))


def test_token_alignment_uses_last_n_queries():
    Q, d = 4, 2
    emb = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])          # 2 real tokens + padding
    mask = torch.tensor([[1, 1, 0]])
    virtual = torch.zeros(1, Q, d)
    virtual[0, 2:] = emb[0, :2]                                          # last 2 queries match
    virtual[0, :2] = 100.0                                               # free queries: ignored
    assert token_alignment_loss(virtual, emb, mask).item() == 0.0
    virtual[0, 3] = torch.tensor([0.0, 4.0])                             # off by 3 on one token
    assert token_alignment_loss(virtual, emb, mask).item() == 1.5       # (0 + 3) / 2


def test_token_alignment_caps_at_query_count_and_batches():
    emb = torch.arange(12.0).reshape(1, 6, 2).repeat(2, 1, 1)
    mask = torch.tensor([[1] * 6, [1, 0, 0, 0, 0, 0]])
    virtual = torch.zeros(2, 3, 2)
    virtual[0] = emb[0, :3]                   # 6 tokens, 3 queries: first 3 tokens on all queries
    virtual[1, 2] = emb[1, 0] + torch.tensor([0.0, 2.0])   # 1 token on the last query, off by 2
    loss = token_alignment_loss(virtual, emb, mask)
    assert loss.item() == 1.0                 # (0 + 2) / 2


def test_token_alignment_empty_transcript_is_zero():
    assert token_alignment_loss(torch.ones(1, 3, 2), torch.zeros(1, 2, 2), torch.zeros(1, 2)).item() == 0.0
    empty = whisper_token_ce_loss(torch.ones(1, 3, 2), torch.zeros(1, 2, dtype=torch.long),
                                  torch.zeros(1, 2), torch.eye(2))
    assert empty.item() == 0.0


def test_whisper_token_ce_reads_states_through_the_whisper_head():
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0]])                      # Whisper vocabulary of 2
    ids = torch.tensor([[1, 0], [0, 0]])
    mask = torch.tensor([[1, 0], [0, 0]])                                # 1 token, then an empty transcript
    states = torch.zeros(2, 3, 2, requires_grad=True)
    with torch.no_grad():
        states[0, 2] = torch.tensor([0.0, 2.0])                          # last slot: logits (0, 2) for token 1
        states[0, :2] = 9.0                                              # free slots: ignored
    expected = -math.log(math.exp(2) / (1 + math.exp(2))) / 2            # example 2 (empty) adds 0
    loss = whisper_token_ce_loss(states, ids, mask, table)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    loss.backward()
    assert states.grad[0, :2].abs().sum() == 0 and states.grad[1].abs().sum() == 0
    assert states.grad[0, 2, 1] < 0 < states.grad[0, 2, 0]               # descent: more token 1, less token 0
    # with a blank token, the free slots are asked for it: (0, 0) logits cost log 2 per free slot
    states0 = states.detach().clone()
    states0[0, :2] = torch.tensor([0.0, 0.0])
    blank = whisper_token_ce_loss(states0, ids, mask, table, blank_id=0)
    assert math.isclose(blank.item(), expected + math.log(2), rel_tol=1e-5)   # (log2 + log2)/2 over the batch


def test_whisper_token_ctc_lets_a_word_fill_several_slots_but_not_swap_places():
    table = torch.eye(4)                                                 # token 0 is the blank
    spelled = torch.stack([table[t] * 30 for t in (0, 2, 2, 0, 3)]).unsqueeze(0)   # "_ 2 2 _ 3"
    ids, mask = torch.tensor([[2, 3, 0]]), torch.tensor([[1, 1, 0]])
    assert whisper_token_ctc_loss(spelled, ids, mask, table, blank_id=0).item() < 1e-6
    swapped = whisper_token_ctc_loss(spelled, torch.tensor([[3, 2, 0]]), mask, table, blank_id=0)
    assert swapped.item() > 10                                           # order matters
    # a right-aligned CE reading of the same slots would charge for the repeat; CTC does not
    assert whisper_token_ce_loss(spelled, ids, mask, table).item() > 10
    uniform = torch.zeros(1, 5, 4, requires_grad=True)
    loss = whisper_token_ctc_loss(uniform, ids, mask, table, blank_id=0)
    loss.backward()
    assert loss.item() > 0 and uniform.grad.abs().sum() > 0
    assert uniform.grad[0, :, 1].gt(0).all()                             # descent lowers the unused token


def test_transcript_ce_ignores_masked_labels():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]))
    labels = torch.tensor([[0, -100]])
    assert abs(transcript_ce_loss(logits, labels).item() - math.log(2)) < 1e-6
