#!/usr/bin/env bash
# The mini deliverables in order, each resumable: rerun this script after any interruption.
# DiVA-mini in two stages (token alignment alone on cached encoder states, then distillation +
# alignment from there), then the SFT baseline from the same stage 1 at stage 2's budget. Outputs: results/train/runs/{diva-mini,sft-mini}/, checkpoints/.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-.venv/bin/python}
$PY -m train.data build --config train/configs/mini.yaml
$PY -m train.distill --config train/configs/mini-align.yaml "$@"
$PY -m train.distill --config train/configs/mini.yaml "$@"
$PY -m train.distill --config train/configs/sft-mini.yaml "$@"
