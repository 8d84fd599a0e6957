# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: setup assets test demo ask bench bench-train eval figures corpus train-mini leaderboard clean-venv

# virtualenv + pinned packages (+ Debian packages when root); re-runs when requirements change
.venv/.installed: requirements.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup: .venv/.installed

# convert the embedded default models into $DIVA_HOME (default ~/.cache/diva); skips work already done
assets: setup
	$(PY) -m diva assets

test: assets
	$(PY) -m pytest -q tests

# the main job: the A/B arena on the default local assistants
demo: assets
	$(PY) -m demo.app

# ask the default assistants a bundled spoken question, streaming their answers
ask: assets
	$(PY) -m diva ask diva/samples/capital_of_france.wav --assistant cascade-mini
	$(PY) -m diva ask diva/samples/capital_of_france.wav --assistant diva-mini

# speed and memory, as ratios against a baseline measured in the same process (results/bench/)
bench: assets
	$(PY) -m diva.bench
	$(PY) -m diva.serve_bench
	$(PY) -m eval.bench
	$(PY) -m demo.bench

bench-train: assets
	$(PY) -m train.bench

eval: assets
	$(PY) -m eval.run --assistant text-mini,cascade-mini,diva-mini --suite all

figures: setup
	$(PY) -m results.figures

corpus: assets
	$(PY) -m train.data build --config train/configs/diva-mini.yaml

# corpus, DiVA-mini, then the SFT baseline; each step resumes where it stopped
train-mini: assets
	$(PY) -m train.distill --config train/configs/diva-mini.yaml
	$(PY) -m train.distill --config train/configs/sft-mini.yaml

leaderboard: setup
	$(PY) -m demo.leaderboard --out results/arena

clean-venv:
	rm -rf .venv
