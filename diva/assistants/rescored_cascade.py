"""The cascade with the LLM rescoring that DiVA's beam reading gets: Whisper's beam search keeps
an n-best list of transcripts, the frozen LLM scores each as the question it is about to answer
(`diva.bridge.pick_question`: recogniser log-prob + lm_weight * LLM log-prob + length_bonus *
LLM tokens, the weights diva-mini-whisper-beam uses), and the LLM answers the one picked.

Whisper's own `generate` cannot give the n-best: for `num_return_sequences` > 1 it copies each
input that many times and runs a whole beam search per copy returning its single best (made for
sampling), so a beam of 8 returns 8 copies of the same text and costs 8 x 8 hypotheses (16 x 16
ran out of memory). The generic `GenerationMixin.generate` runs one beam search per clip and
returns its best `n_best` distinct hypotheses; the prompt tokens Whisper's wrapper would add
(start of transcript, no timestamps; language and task for multilingual models) are passed as
`decoder_input_ids`.
"""
from __future__ import annotations

import copy

import torch
from transformers import GenerationMixin

from diva.assistants.cascade import CascadeAssistant
from diva.audio import SAMPLE_RATE
from diva.bridge import InferenceOptions, pick_question

DEFAULTS = InferenceOptions()
MAX_NEW_TOKENS = 128  # 30 s of speech is well under; stops a hypothesis that loops


class RescoredCascadeAssistant(CascadeAssistant):
    def __init__(self, name: str, whisper, feature_extractor, whisper_tokenizer, llm, tokenizer,
                 n_best: int = 8, lm_weight: float = DEFAULTS.beam_lm_weight,
                 length_bonus: float = DEFAULTS.beam_length_bonus):
        super().__init__(name, whisper, feature_extractor, whisper_tokenizer, llm, tokenizer)
        self.n_best, self.lm_weight, self.length_bonus = n_best, lm_weight, length_bonus

    def prompt_ids(self) -> list[int]:
        config = self.whisper.generation_config
        ids = [config.decoder_start_token_id]
        if getattr(config, "is_multilingual", False):
            ids += [config.lang_to_id["<|en|>"], config.task_to_id["transcribe"]]
        no_timestamps = getattr(config, "no_timestamps_token_id", None)
        return ids + ([no_timestamps] if no_timestamps is not None else [])

    @torch.no_grad()
    def n_best_list(self, audios) -> list[list[tuple[str, float]]]:
        """Per clip, Whisper's beam hypotheses [(text, total log-prob)], best first. The encoder runs
        once; the log-probs come from one teacher-forced pass per clip (keeping the search's
        per-step scores would hold steps x beams x vocabulary floats: gigabytes on a long clip)."""
        batch = self.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        features = batch.input_features.to(self.whisper.device, self.whisper.dtype)
        encoded = self.whisper.get_encoder()(features)
        prompt = torch.tensor([self.prompt_ids()] * len(audios), device=self.whisper.device)
        config = copy.deepcopy(self.whisper.generation_config)
        config.update(num_beams=self.n_best, num_return_sequences=self.n_best, do_sample=False,
                      max_new_tokens=min(MAX_NEW_TOKENS, self.whisper.config.max_target_positions - prompt.shape[1]))
        sequences = GenerationMixin.generate(self.whisper, encoder_outputs=encoded, decoder_input_ids=prompt,
                                             generation_config=config)
        out = []
        for i in range(len(audios)):
            rows = sequences[i * self.n_best:(i + 1) * self.n_best]
            states = encoded.last_hidden_state[i:i + 1].expand(len(rows), -1, -1)
            logits = self.whisper(encoder_outputs=(states,), decoder_input_ids=rows[:, :-1]).logits
            token_lp = logits.float().log_softmax(-1).gather(-1, rows[:, 1:, None])[..., 0]
            done = (rows[:, 1:] == config.eos_token_id).long().cumsum(1)
            counted = (torch.arange(rows.shape[1] - 1, device=rows.device) >= prompt.shape[1] - 1) & \
                      ((done == 0) | ((done == 1) & (rows[:, 1:] == config.eos_token_id)))
            texts = self.whisper_tokenizer.batch_decode(rows, skip_special_tokens=True)
            out.append([(t.strip(), float(lp)) for t, lp in zip(texts, (token_lp * counted).sum(1))])
        return out

    def transcribe(self, audios) -> list[str]:
        """Per clip, the n-best transcript the LLM prefers."""
        return [pick_question(self.llm, self.layout, candidates, self.lm_weight, self.length_bonus)
                for candidates in self.n_best_list(audios)]
