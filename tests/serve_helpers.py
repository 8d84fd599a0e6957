"""Helpers for the serve tests: a server on a tiny random DiVA in this process, and raw HTTP
requests whose body is never sent whole."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

from arena_helpers import free_port


@contextmanager
def tiny_server(api_key: str | None = None, **options):
    """A `diva serve` app on a tiny random DiVA named "tiny", in a thread: yields (base url, port)."""
    import uvicorn

    from diva.assistants.diva import DivaAssistant
    from diva.serve import build_app
    from diva.testing import tiny_diva
    app = build_app(DivaAssistant("tiny", tiny_diva(n_queries=8)), api_key, **options)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the in-process server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1", port
    finally:
        server.should_exit = True
        thread.join(30)


def raw_request(port: int, headers: dict, chunks: list[bytes] = (), timeout_s: float = 60) -> int:
    """POST /v1/chat/completions with these headers and (chunked) body pieces, then read the status
    line without sending anything more: the server must answer before the body ends."""
    head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status = sock.recv(64).split(b" ")
    return int(status[1])


@contextmanager
def prefill_lengths(llm):
    """Record the sequence length of every forward of `llm`'s decoder (how many positions it computes)."""
    lengths: list[int] = []

    def record(module, args, kwargs):
        x = kwargs["inputs_embeds"] if kwargs.get("inputs_embeds") is not None else kwargs["input_ids"]
        lengths.append(x.shape[1])
    hook = llm.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield lengths
    finally:
        hook.remove()
