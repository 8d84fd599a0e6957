#!/usr/bin/env bash
# The Whisper-head + vocabulary-bridge variant in order, each resumable: rerun after any interruption.
# Stage 1 against Whisper's own head (the LLM is not run), stage 2 distillation through the bridge
# (diva-mini-whisper), then the SFT baseline behind the same bridge from the same stage 1 at stage 2's
# budget. Outputs: results/train/runs/{diva-mini-align-whisper,diva-mini-whisper,sft-mini-whisper}/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-.venv/bin/python}
$PY -m train.data build --config train/configs/mini.yaml
$PY -m train.distill --config train/configs/mini-align-whisper.yaml "$@"
$PY -m train.distill --config train/configs/mini-whisper.yaml "$@"
$PY -m train.distill --config train/configs/sft-mini-whisper.yaml "$@"
