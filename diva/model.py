"""DiVA: frozen Whisper encoder -> Q-Former connector -> virtual tokens -> frozen text LLM.

The connector is a full copy of Whisper's decoder, initialised from Whisper, whose input
embeddings are learned query tokens (plus Whisper's learned decoder positions); it
cross-attends to the encoder output with causal self-attention over the queries. A linear
projection (with bias) maps its output to the LLM width. Trainable: query tokens, the decoder
copy, the projection. Frozen: the encoder and the LLM.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from diva.audio import SAMPLE_RATE, LongAudioWarning
from diva.prompt import PromptLayout


UNUSED_CONNECTOR_PREFIX = "embed_tokens."  # Whisper's token table, copied but never read
BRIDGE_BLANKS = ("zero", "drop", "collapse")
BRIDGE_DECODES = ("greedy", "llm-beam")


@dataclass
class DivaConfig:
    encoder: str = "whisper-tiny.en"      # embedded name, hub id or folder
    llm: str = "smollm2-135m-instruct"
    n_queries: int = 448                  # paper: 448 = Whisper's max target length
    encoder_seconds: float = 30.0         # Whisper's window; shorter runs the encoder on the first
                                          # N seconds only (faster; audio past it is not heard)
    projection: str = "linear"            # "linear" (the paper) | "whisper-vocab" (diva.bridge, an ablation)
    bridge_temperature: float = 1.0       # whisper-vocab only: softmax temperature over Whisper's head
    bridge_blank: str = "zero"            # whisper-vocab only: slots read as a special token (the blank)
                                          # reach the LLM as zeros ("zero") or not at all ("drop");
                                          # "collapse" also leaves out a repeat of the previous slot's
                                          # token (CTC's reading, for train.align_whisper_ctc)
    n_extra_slots: int = 0                # whisper-vocab only: query slots after the words, projected
                                          # linearly instead of through the bridge (an ablation: room
                                          # for what distillation alone would carry; train.trainable: extra)
    bridge_decode: str = "greedy"         # whisper-vocab + collapse only, at inference: each slot's top
                                          # token ("greedy"), or the CTC beam's reading that the frozen
                                          # LLM finds most likely ("llm-beam", diva.ctc_beam; an ablation)
    beam_width: int = 16
    beam_top_k: int = 8                   # words per slot the beam considers
    beam_lm_weight: float = 0.5
    beam_length_bonus: float = 1.0        # per LLM token of the reading

    def to_dict(self) -> dict:
        return asdict(self)


class DiVA(nn.Module):
    def __init__(self, whisper, feature_extractor, llm, tokenizer, config: DivaConfig,
                 whisper_tokenizer=None):
        super().__init__()
        max_queries = whisper.config.max_target_positions
        if not 1 <= config.n_queries <= max_queries:
            raise ValueError(f"n_queries must be in 1..{max_queries} (Whisper's decoder positions)")
        if not 0 <= config.n_extra_slots <= max_queries - config.n_queries:
            raise ValueError(f"n_extra_slots must be in 0..{max_queries - config.n_queries} "
                             "(Whisper's decoder positions left after n_queries)")
        if config.n_extra_slots and config.projection != "whisper-vocab":
            raise ValueError("n_extra_slots needs projection 'whisper-vocab' (with the linear "
                             "projection every slot is already free)")
        window = whisper.config.max_source_positions  # encoder frames in 30 s (50 per second)
        self.encoder_frames = round(config.encoder_seconds * window / 30)
        if not 1 <= self.encoder_frames <= window:
            raise ValueError(f"encoder_seconds must be in (0, 30], got {config.encoder_seconds}")
        self.config = config
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.whisper_tokenizer = whisper_tokenizer  # the connector's own vocabulary (Whisper-head ablation)
        self.layout = PromptLayout(tokenizer)
        self.encoder = whisper.get_encoder()          # frozen, shared with other assistants
        self.llm = llm                                # frozen, shared with other assistants
        d_whisper, d_llm = whisper.config.d_model, llm.get_input_embeddings().embedding_dim
        self.connector = copy.deepcopy(whisper.get_decoder())
        self.connector.train(False)
        self.connector.requires_grad_(True)
        # its inputs are the query tokens, so the copied token-embedding table is never used
        self.connector.embed_tokens.requires_grad_(False)
        # start the queries at Whisper's own token-embedding scale
        scale = float(self.connector.embed_tokens.weight.detach().std())
        self.query_tokens = nn.Parameter(torch.randn(config.n_queries, d_whisper) * scale)
        if config.projection == "linear":
            self.projection = nn.Linear(d_whisper, d_llm, bias=True)
        elif config.projection == "whisper-vocab":
            if whisper_tokenizer is None:
                raise ValueError("projection 'whisper-vocab' needs Whisper's tokenizer")
            if not config.bridge_temperature > 0:
                raise ValueError(f"bridge_temperature must be > 0, got {config.bridge_temperature}")
            if config.bridge_blank not in BRIDGE_BLANKS:
                raise ValueError(f"bridge_blank must be one of {BRIDGE_BLANKS}, got {config.bridge_blank!r}")
            if config.bridge_decode not in BRIDGE_DECODES:
                raise ValueError(f"bridge_decode must be one of {BRIDGE_DECODES}, got {config.bridge_decode!r}")
            if config.bridge_decode == "llm-beam" and config.bridge_blank != "collapse":
                raise ValueError("bridge_decode 'llm-beam' reads the slots as CTC does: it needs bridge_blank 'collapse'")
            from diva.bridge import VocabularyBridge, whisper_to_llm_ids
            table = self.connector.embed_tokens.weight
            token_map = whisper_to_llm_ids(whisper_tokenizer, tokenizer, table.shape[0])
            self.projection = VocabularyBridge(table, llm.get_input_embeddings().weight, token_map,
                                               temperature=config.bridge_temperature)
        else:
            raise ValueError(f"projection must be 'linear' or 'whisper-vocab', got {config.projection!r}")
        self.extra_query_tokens = self.extra_projection = None
        if config.n_extra_slots:
            self.extra_query_tokens = nn.Parameter(torch.randn(config.n_extra_slots, d_whisper) * scale)
            # start as the mean LLM input embedding in every extra slot (a token that says nothing);
            # the zero weight still gets a gradient, so distillation grows what the slots carry
            self.extra_projection = nn.Linear(d_whisper, d_llm, bias=True)
            with torch.no_grad():
                self.extra_projection.weight.zero_()
                self.extra_projection.bias.copy_(llm.get_input_embeddings().weight.detach().mean(0))
        device = next(llm.parameters()).device
        dtype = next(llm.parameters()).dtype
        for module in (self.connector, self.projection, self.extra_projection):
            if module is not None:
                module.to(device=device, dtype=dtype)
        for tokens in (self.query_tokens, self.extra_query_tokens):
            if tokens is not None:
                tokens.data = tokens.data.to(device=device, dtype=dtype)

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: DivaConfig) -> "DiVA":
        from diva.models import load_llm, load_whisper
        whisper, features, whisper_tokenizer = load_whisper(config.encoder)
        llm, tokenizer = load_llm(config.llm)
        return cls(whisper, features, llm, tokenizer, config, whisper_tokenizer)

    def train(self, mode: bool = True) -> "DiVA":
        super().train(mode)
        self.encoder.eval()  # frozen parts never switch to training mode
        self.llm.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.query_tokens.device

    def extra_parameters(self) -> list[nn.Parameter]:
        """The extra slots' query tokens and projection (empty without n_extra_slots)."""
        if self.extra_query_tokens is None:
            return []
        return [self.extra_query_tokens, *self.extra_projection.parameters()]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimiser gets: every part DiVA trains that is not frozen (freeze_word_slots)."""
        parts = [self.query_tokens, *self.connector.parameters(), *self.projection.parameters(),
                 *self.extra_parameters()]
        return [p for p in parts if p.requires_grad]

    def freeze_word_slots(self) -> None:
        """Train the extra slots alone: the word slots' queries and the decoder copy stop learning
        (gradients still flow through the frozen decoder to the extra queries)."""
        self.query_tokens.requires_grad_(False)
        self.connector.requires_grad_(False)

    def connector_state_dict(self) -> dict[str, torch.Tensor]:
        """Only what DiVA trains (the encoder and LLM come from their own checkpoints; the
        connector's unused token-embedding table stays Whisper's and is left out)."""
        state = {"query_tokens": self.query_tokens.detach()}
        state.update({f"connector.{k}": v for k, v in self.connector.state_dict().items()
                      if not k.startswith(UNUSED_CONNECTOR_PREFIX)})
        state.update({f"projection.{k}": v for k, v in self.projection.state_dict().items()})
        if self.extra_query_tokens is not None:
            state["extra_query_tokens"] = self.extra_query_tokens.detach()
            state.update({f"extra_projection.{k}": v for k, v in self.extra_projection.state_dict().items()})
        return state

    # ---- the audio path -------------------------------------------------------------------
    def features(self, audios: list[np.ndarray]) -> torch.Tensor:
        """Log-mel features padded to Whisper's 30 s window: (B, n_mels, 3000)."""
        out = self.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return out.input_features.to(self.device, dtype=self.query_tokens.dtype)

    @torch.no_grad()
    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Frozen Whisper encoder: (B, n_mels, 3000) -> (B, frames, d_whisper), 1500 frames for 30 s."""
        if self.encoder_frames == self.encoder.config.max_source_positions:
            return self.encoder(features).last_hidden_state
        return encode_window(self.encoder, features, self.encoder_frames)

    def connector_states(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """The decoder copy's output on the queries (after its final norm, in Whisper's own
        output space): (B, frames, d_whisper) -> (B, n_queries + n_extra_slots, d_whisper).
        The extra slots come last; the decoder is causal, so the word slots never see them."""
        queries = self.query_tokens
        if self.extra_query_tokens is not None:
            queries = torch.cat([queries, self.extra_query_tokens])
        queries = queries.unsqueeze(0).expand(encoder_states.shape[0], -1, -1)
        return self.connector(inputs_embeds=queries, encoder_hidden_states=encoder_states,
                              use_cache=False).last_hidden_state

    def word_states(self, connector_states: torch.Tensor) -> torch.Tensor:
        """The first n_queries slots (what the alignment losses and the probes read)."""
        return connector_states[:, :self.config.n_queries]

    def virtual_tokens(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """Connector + projection: (B, frames, d_whisper) -> (B, slots, d_llm), every slot."""
        return self.project(self.connector_states(encoder_states))[0]

    def project(self, connector_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Connector states -> virtual tokens (B, slots, d_llm) and the slots the LLM sees
        (B, slots), None for all of them. Only a bridge with bridge_blank 'drop' or 'collapse'
        leaves out the slots that Whisper's head reads as a special token (and, for 'collapse', as
        the previous slot's token); extra slots are always seen."""
        words = self.word_states(connector_states)
        if self.config.projection == "whisper-vocab" and self.config.bridge_blank != "zero":
            virtual, keep = self.projection.read(words, collapse=self.config.bridge_blank == "collapse")
        else:
            virtual, keep = self.projection(words), None
        if self.extra_projection is None:
            return virtual, keep
        extra = self.extra_projection(connector_states[:, self.config.n_queries:])
        if keep is not None:
            keep = torch.cat([keep, keep.new_ones(extra.shape[:2])], 1)
        return torch.cat([virtual, extra], 1), keep

    # ---- LLM inputs in the chat-template layout ---------------------------------------------
    def embed_ids(self, ids: list[int]) -> torch.Tensor:
        table = self.llm.get_input_embeddings()
        return table(torch.tensor(ids, dtype=torch.long, device=self.device))

    def audio_inputs(self, virtual_tokens: torch.Tensor, prompts: list[str | None] | None = None,
                     keep: torch.Tensor | None = None):
        """[prefix][prompt][virtual tokens][suffix] per example, left-padded; `keep` (B, n_queries)
        selects the virtual tokens to hand over (project)."""
        prompts = prompts or [None] * virtual_tokens.shape[0]
        rows = []
        for i, (tokens, prompt) in enumerate(zip(virtual_tokens, prompts)):
            before, after = self.layout.around_audio(prompt)
            if keep is not None:
                tokens = tokens[keep[i]]
            rows.append(torch.cat([self.embed_ids(before), tokens, self.embed_ids(after)]))
        return left_pad(rows)

    def text_inputs(self, transcripts: list[str], prompts: list[str | None] | None = None):
        """The same layout with the transcript in place of the audio, left-padded."""
        prompts = prompts or [None] * len(transcripts)
        rows = [self.embed_ids(self.layout.text_ids(t, p)) for t, p in zip(transcripts, prompts)]
        return left_pad(rows)

    def last_hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The LLM's final hidden state (after its final norm) at the last prompt position."""
        out = self.llm.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                     use_cache=False)
        return out.last_hidden_state[:, -1]

    def speech_states(self, audios: list[np.ndarray]) -> torch.Tensor:
        """Audio arrays (16 kHz) -> connector states (B, n_queries, d_whisper)."""
        longest = max(len(a) for a in audios) / SAMPLE_RATE
        if longest > self.config.encoder_seconds:
            warnings.warn(LongAudioWarning(f"{longest:.1f} s of audio: this DiVA hears only the first "
                                           f"{self.config.encoder_seconds:g} s"), stacklevel=4)
        return self.connector_states(self.encode(self.features(audios)))

    def speech_tokens(self, audios: list[np.ndarray]) -> torch.Tensor:
        """Audio arrays (16 kHz) -> virtual tokens (B, slots, d_llm), every slot."""
        return self.project(self.speech_states(audios))[0]

    def read_speech(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """At inference: `project`, or with bridge_decode 'llm-beam' the embeddings of the LLM-
        rescored CTC reading of the word slots, in the LLM's own tokens (diva.ctc_beam)."""
        if self.config.projection != "whisper-vocab" or self.config.bridge_decode == "greedy":
            return self.project(states)
        from diva.ctc_beam import rescored_reading
        questions = rescored_reading(self, self.projection.head_logits(self.word_states(states)))
        rows = [self.embed_ids(self.layout.transcript_ids(q)) for q in questions]
        virtual = self.projection.targets.new_zeros(len(rows), max(1, *(len(r) for r in rows)),
                                                    self.projection.targets.shape[1])
        keep = torch.zeros(virtual.shape[:2], dtype=torch.bool, device=virtual.device)
        for i, row in enumerate(rows):
            virtual[i, :len(row)] = row
            keep[i, :len(row)] = True
        if self.extra_projection is not None:
            extra = self.extra_projection(states[:, self.config.n_queries:])
            virtual, keep = torch.cat([virtual, extra], 1), torch.cat([keep, keep.new_ones(extra.shape[:2])], 1)
        return virtual.to(states.dtype), keep

    def speech_inputs(self, audios: list[np.ndarray], prompts: list[str | None] | None = None):
        """Audio arrays (16 kHz) -> LLM inputs_embeds and attention mask, ready for generation."""
        virtual, keep = self.read_speech(self.speech_states(audios))
        return self.audio_inputs(virtual, prompts, keep)


def encode_window(encoder, features: torch.Tensor, frames: int) -> torch.Tensor:
    """Whisper's encoder forward on the first `frames` positions only (2 mel frames each): the
    same layers on a shorter window. (transformers' forward insists on the full 30 s.)"""
    x = nn.functional.gelu(encoder.conv1(features[..., :2 * frames]))
    x = nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[:frames]
    for layer in encoder.layers:
        x = layer(x, None)
    return encoder.layer_norm(x)


def left_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (T_i, d) rows into (B, T, d) with zeros on the left and a 0/1 attention mask."""
    longest = max(r.shape[0] for r in rows)
    embeds = rows[0].new_zeros(len(rows), longest, rows[0].shape[-1])
    mask = torch.zeros(len(rows), longest, dtype=torch.long, device=rows[0].device)
    for i, r in enumerate(rows):
        embeds[i, longest - r.shape[0]:] = r
        mask[i, longest - r.shape[0]:] = 1
    return embeds, mask
