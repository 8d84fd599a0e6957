"""The arena's local models, each in its own process: a `python -m diva serve` on a loopback port.

Two models answering in one Python process take turns for its interpreter lock, and each asks for
every core, so on a small machine both sides of a battle start far later than either alone. In
their own processes, with the cores split between them, each side starts close to its solo time,
and concurrent battles reach each model's server, which decodes them as one batch
(diva.batching). A worker serves under a random key, passed in its environment rather than on its
command line (where other users could read it), exits when the arena process ends (even by
kill -9), and logs to `<log_dir>/<model>.log`.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

from diva.assistants.remote import RemoteAssistant
from diva.serve import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


class WorkerError(RuntimeError):
    """A worker that did not start: its process ended or did not answer in time."""


def threads_per_worker(cores: int | None = None) -> int:
    """Both sides of a battle decode at once: each gets half the cores."""
    return max(1, (cores or os.cpu_count() or 2) // 2)


class ModelWorker:
    def __init__(self, name: str, log_dir: str | Path, threads: int | None = None, key: str | None = None):
        self.name = name
        self.port = free_port()
        self.key = key or secrets.token_urlsafe(24)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log_dir) / f"{name.replace('/', '_')}.log"
        threads = threads or threads_per_worker()
        command = [sys.executable, "-m", "diva", "serve", "--assistant", name, "--port", str(self.port),
                   "--threads", str(threads), "--parent-pid", str(os.getpid())]
        env = {**os.environ, "DIVA_API_KEY": self.key, "OMP_NUM_THREADS": str(threads),
               "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=REPO_ROOT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float = 600.0) -> RemoteAssistant:
        """Block until the server answers; the assistant that talks to it."""
        deadline = time.monotonic() + timeout_s
        headers = {"Authorization": f"Bearer {self.key}"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise WorkerError(f"{self.name}: its server exited with status {self.process.returncode}: "
                                  f"{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", headers=headers, timeout=2.0).status_code == 200:
                    return RemoteAssistant(self.name, self.base_url, model=self.name, api_key=self.key)
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise WorkerError(f"{self.name}: its server did not answer within {timeout_s:.0f} s")

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
