"""Turn the checkpoint a user names into a Hugging Face directory that transformers loads fast: a
directory is used as it is; a GGUF file is converted once into a cached safetensors directory.

Why convert: transformers reads a GGUF file by parsing its metadata and dequantizing every tensor
in Python, about 20 s for the 135M default model on two cores, each time it is loaded; the
converted directory loads in a fraction of a second.

What is fragile: transformers 5 loads GGUF through a quantizer that refuses ``save_pretrained``
("quantized with gguf and is not serializable"). Asking it to dequantize at load time
(``GgufConfig(dequantize=True)``) makes it drop the quantizer once the weights are in; where a
quantizer is left on a model whose weights are all plain tensors anyway (the legacy loader), it is
removed here. Then ``save_pretrained`` writes safetensors (tied weights once), config and
generation config, and the tokenizer converted from the same file is saved beside them. The
conversion writes into a temporary directory beside its cache entry and renames it into place, so a
crash leaves no half entry (its files are flushed to disk first); a lock file keeps two processes
from converting one file twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from byzer_agents.exceptions import ConfigurationError

__all__ = ["checkpoint_cache_root", "converted_checkpoint_dir", "resolve_checkpoint"]

logger = logging.getLogger(__name__)

_GGUF_MAGIC = b"GGUF"
_SOURCE_FILE = "byzer_agents_source.json"
"""Written into each converted directory: which file it came from, and with what."""


def checkpoint_cache_root() -> Path:
    """Where converted checkpoints are kept: ``$BYZER_AGENTS_CACHE/checkpoints``, by default
    ``~/.cache/byzer_agents/checkpoints``."""
    root = os.environ.get("BYZER_AGENTS_CACHE") or Path.home() / ".cache" / "byzer_agents"
    return Path(root).expanduser() / "checkpoints"


def converted_checkpoint_dir(gguf_path: str | Path) -> Path:
    """The cache directory a GGUF file converts into: ``<stem>-<hash>``, the hash taken over the
    file's resolved path, size and modification time, so a changed file converts anew."""
    path = Path(gguf_path).expanduser().resolve()
    stat = path.stat()
    key = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
    return checkpoint_cache_root() / f"{path.stem}-{hashlib.sha256(key).hexdigest()[:16]}"


def resolve_checkpoint(path: str | Path, gguf_file: str | None = None) -> Path:
    """A Hugging Face checkpoint directory for ``path``.

    ``path`` is a directory holding ``config.json`` (returned as it is), a GGUF file, or a
    directory with ``gguf_file`` naming the GGUF file in it. A GGUF file is converted into
    safetensors on first use (with progress shown) and the cached directory is returned then and
    on every later call.
    """
    source = Path(path).expanduser()
    if gguf_file is not None:
        if not source.is_dir():
            raise FileNotFoundError(
                f"gguf_file={gguf_file!r} names a file inside the directory {str(source)!r}, "
                "which does not exist"
            )
        gguf_path = source / gguf_file
        if not gguf_path.is_file():
            found = ", ".join(sorted(p.name for p in source.glob("*.gguf"))) or "none"
            raise FileNotFoundError(
                f"no GGUF file {gguf_file!r} in {str(source)!r}; the GGUF files there: {found}"
            )
    elif source.is_dir():
        if (source / "config.json").is_file():
            return source
        ggufs = sorted(p.name for p in source.glob("*.gguf"))
        hint = (
            f"; it holds GGUF files ({', '.join(ggufs)}): pass gguf_file=<one of them>"
            if ggufs
            else ""
        )
        raise FileNotFoundError(
            f"{str(source)!r} is not a Hugging Face checkpoint: it has no config.json{hint}"
        )
    elif source.is_file():
        gguf_path = source
    else:
        raise FileNotFoundError(
            f"no checkpoint at {str(source)!r}: give a Hugging Face directory (with config.json) "
            "or a .gguf file"
        )
    _check_gguf(gguf_path)
    target = converted_checkpoint_dir(gguf_path)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _conversion_lock(target):
        if not target.is_dir():  # another process may have converted it while we waited
            _convert_gguf(gguf_path.resolve(), target)
    return target


def _check_gguf(path: Path) -> None:
    with path.open("rb") as file:
        magic = file.read(len(_GGUF_MAGIC))
    if magic != _GGUF_MAGIC:
        raise ConfigurationError(
            f"{str(path)!r} is neither a Hugging Face directory nor a GGUF file (it does not start "
            f"with {_GGUF_MAGIC!r}); give a directory with config.json or a .gguf file"
        )


@contextlib.contextmanager
def _conversion_lock(target: Path) -> Iterator[None]:
    """Held while ``target`` is converted; where ``fcntl`` is missing (Windows) the atomic rename
    alone keeps entries whole, and a race costs one conversion twice."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    from tqdm.auto import tqdm

    # Under the lock, temporary directories of this entry are left by conversions that crashed.
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    started = time.perf_counter()
    try:
        with tqdm(total=3, desc=f"Converting {gguf_path.name} to safetensors", unit="step") as bar:
            bar.set_postfix_str("tokenizer")
            tokenizer = _load_gguf_tokenizer(gguf_path)
            bar.update()
            bar.set_postfix_str("weights (dequantizing)")
            model = _load_gguf_model(gguf_path)
            bar.update()
            bar.set_postfix_str("writing safetensors")
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / _SOURCE_FILE).write_text(json.dumps(_source_record(gguf_path), indent=2))
            _sync_files(staging)
            bar.update()
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(staging, ignore_errors=True)  # converted meanwhile, without a lock
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("converted %s into %s in %.1f s", gguf_path, target, time.perf_counter() - started)


def _sync_files(directory: Path) -> None:
    """Flush the files to disk before the rename makes them the cache entry, so that not even a
    power cut leaves an entry with missing data."""
    for path in directory.rglob("*"):
        if path.is_file():
            with path.open("rb") as file:
                os.fsync(file.fileno())


def _load_gguf_tokenizer(gguf_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, local_files_only=True
    )


def _load_gguf_model(gguf_path: Path) -> Any:
    """The model of a GGUF file, dequantized, with no quantizer left on it."""
    import transformers

    options: dict[str, Any] = {"gguf_file": gguf_path.name, "local_files_only": True}
    gguf_config = getattr(transformers, "GgufConfig", None)  # transformers 5; 4.x dequantizes
    if gguf_config is not None:
        options["quantization_config"] = gguf_config(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), **options)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        packed = [n for n, p in model.named_parameters() if not p.dtype.is_floating_point]
        if packed:
            raise ConfigurationError(
                f"cannot convert {str(gguf_path)!r}: transformers kept weights packed in GGUF "
                f"blocks ({', '.join(packed[:3])}...) and cannot write them as safetensors"
            )
        quantizer.remove_quantization_config(model)
    return model


def _source_record(gguf_path: Path) -> dict[str, Any]:
    import transformers

    stat = gguf_path.stat()
    return {
        "source": str(gguf_path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "transformers": transformers.__version__,
    }
