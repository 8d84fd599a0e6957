"""Serving benchmark: `python -m diva.serve_bench` (part of `make bench`) -> results/bench/serve.csv.

Starts `python -m diva serve --assistant cascade-mini` on a free loopback port and asks it the
inference bench's spoken questions from 1, 4 and 8 concurrent clients, each client waiting for its
answer before asking again. Every level asks the same number of questions and every reply is
exactly --max-tokens long (min_tokens = max_tokens), so levels compare like with like. Per level:
median and 95th-percentile latency, completion tokens/s and requests/s over the level's wall
time, and throughput relative to one client (target for 8 clients: >= 3x).
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from diva.bench import OUT, QUESTIONS
from diva.serve import free_port

REPO = Path(__file__).resolve().parents[1]



def wav_base64(samples: np.ndarray) -> str:
    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, samples, 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def start_server(assistant: str, port: int, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "diva", "serve", "--assistant", assistant,
                                    "--port", str(port)], cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise TimeoutError(f"the server did not answer within 600 s; see {log}")


def run_level(url: str, assistant: str, clips: list[str], clients: int, total: int, max_tokens: int) -> dict:
    """`clients` threads share `total` questions, one request at a time each."""
    latencies, tokens, errors = [], [], []
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx.Client(timeout=600) as http:
            for k in range(index, total, clients):
                body = {"model": assistant, "max_tokens": max_tokens, "min_tokens": max_tokens,
                        "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {
                            "data": clips[k % len(clips)], "format": "wav"}}]}]}
                start = time.perf_counter()
                response = http.post(f"{url}/chat/completions", json=body)
                took = time.perf_counter() - start
                with lock:
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    else:
                        latencies.append(took)
                        tokens.append(response.json()["usage"]["completion_tokens"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return {"assistant": assistant, "clients": clients, "requests": len(latencies),
            "completion_tokens": sum(tokens), "wall_s": wall,
            "latency_median_s": float(np.median(latencies)), "latency_p95_s": float(np.percentile(latencies, 95)),
            "throughput_tokens_per_s": sum(tokens) / wall, "requests_per_s": len(latencies) / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assistant", default="cascade-mini")
    parser.add_argument("--clients", default="1,4,8")
    parser.add_argument("--requests", type=int, default=16, help="questions asked at every level")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--voice", default="piper:joe")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    from diva.voices import synthesize
    clips = [wav_base64(synthesize(q, args.voice)) for q in QUESTIONS]
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = start_server(args.assistant, port, Path(tempfile.mkdtemp(prefix="serve-bench-")) / "server.log")
    try:
        levels = [int(c) for c in args.clients.split(",")]
        run_level(url, args.assistant, clips, max(levels), max(levels), 8)  # warm-up, batched and not
        run_level(url, args.assistant, clips, 1, 1, 8)
        rows = []
        for clients in levels:
            rows.append(run_level(url, args.assistant, clips, clients, args.requests, args.max_tokens))
            print(f"{clients} clients: {rows[-1]['throughput_tokens_per_s']:.1f} tokens/s, "
                  f"median {rows[-1]['latency_median_s']:.2f} s", flush=True)
    finally:
        server.terminate()
        server.wait(60)
    table = pd.DataFrame(rows)
    single = table.loc[table.clients == table.clients.min(), "throughput_tokens_per_s"].iloc[0]
    table["throughput_vs_fewest_clients"] = table.throughput_tokens_per_s / single
    table.insert(0, "cpu_count", os.cpu_count())
    table.to_csv(args.out / "serve.csv", index=False, float_format="%.3f")
    print(table.drop(columns=["cpu_count"]).round(3).to_string(index=False))
    print(f"\nwrote {args.out / 'serve.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
