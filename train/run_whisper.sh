#!/usr/bin/env bash
# The Whisper-head + vocabulary-bridge variant in order, each resumable: rerun after any interruption.
# Stage 1 against Whisper's own head (right-aligned cross-entropy, then CTC over all slots; the LLM is
# not run), the committed diva-mini-whisper (the CTC stage behind the collapsing bridge, T 0.05: a
# 0-step run that validates and exports it), then the equal-budget pair from the same CTC stage:
# distillation through the bridge (diva-mini-whisper-ctc) and SFT with the same CTC term.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-.venv/bin/python}
$PY -m train.data build --config train/configs/mini.yaml
$PY -m train.distill --config train/configs/mini-align-whisper.yaml "$@"
$PY -m train.distill --config train/configs/mini-align-whisper-ctc.yaml "$@"
$PY -m train.distill --config train/configs/diva-mini-whisper.yaml "$@"
$PY -m train.distill --config train/configs/mini-whisper-ctc.yaml "$@"
$PY -m train.distill --config train/configs/sft-mini-whisper-ctc.yaml "$@"
