"""Smoke-test a running arena: ask it spoken questions (espeak-ng) through its API and vote by a
keyword rule, so the store, the leaderboard and its exports can be checked end to end.

    python -m demo.smoke --url http://127.0.0.1:7860 [--rounds 6]

The rule: the answer that contains the expected word wins; both -> tie; neither -> both bad.
These are NOT human preferences; never mix them into a user study.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from diva.errors import ArgumentParser, fail

QUESTIONS = [
    ("What is the capital of France?", ("paris",)),
    ("How many days are there in a week?", ("seven", "7")),
    ("What color is the sky on a clear day?", ("blue",)),
    ("What is two plus two?", ("four", "4")),
    ("Which planet do we live on?", ("earth",)),
    ("What do bees make?", ("honey",)),
]


def keyword_vote(answer_a: str, answer_b: str, expected: tuple[str, ...]) -> str:
    hit_a, hit_b = (any(w in text.lower() for w in expected) for text in (answer_a, answer_b))
    return {(True, False): "model_a", (False, True): "model_b", (True, True): "tie"}.get((hit_a, hit_b), "both_bad")


def main(argv: list[str] | None = None) -> int:
    import httpx
    from gradio_client import Client, handle_file

    p = ArgumentParser(prog="python -m demo.smoke", description=__doc__.split("\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:7860")
    p.add_argument("--rounds", type=int, default=len(QUESTIONS))
    p.add_argument("--auth", help="user:password, if the arena has a login")
    args = p.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    try:
        httpx.get(args.url, timeout=10)
    except httpx.HTTPError as error:
        return fail(f"no arena answers at --url {args.url} ({error}); start one with python -m demo.app")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            question, expected = QUESTIONS[i % len(QUESTIONS)]
            wav = Path(tmp) / f"q{i}.wav"
            subprocess.run(["espeak-ng", "-w", str(wav), question], check=True, capture_output=True)
            client = Client(args.url, auth=auth, verbose=False)
            out = client.predict(handle_file(str(wav)), "", api_name="/battle")
            answer_a, answer_b, stats_a, stats_b = out[2:6]
            outcome = keyword_vote(answer_a, answer_b, expected)
            reveal = client.predict("keyword rule (demo.smoke)", api_name=f"/vote_{outcome}")[1]
            print(f"{question!r}\n  A: {answer_a[:80]!r} ({stats_a})\n  B: {answer_b[:80]!r} ({stats_b})\n"
                  f"  vote: {outcome}. {reveal}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
