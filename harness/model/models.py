"""Load a causal LM (+ optional PEFT adapter) once, in eval mode, and fingerprint its files.

    >>> from harness.model.models import load_model
    >>> lm = load_model("fixtures/tiny-gpt2", device="cpu")        # doctest: +SKIP
    >>> lm.fingerprint[:7]                                           # doctest: +SKIP
    'sha256:'
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ModelLoadError, did_you_mean

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# Files that change what a model generates: weights, config, tokenizer, chat template, adapter.
_FINGERPRINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model", ".jinja", ".tiktoken")
_memo_lock = threading.Lock()


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    path: str
    adapter: str | None
    fingerprint: str
    device: Any
    dtype: Any
    context_length: int

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "adapter": self.adapter, "fingerprint": self.fingerprint,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", "")}


def looks_local(path: str) -> bool:
    """A path (not a hub id): exists, or starts like a filesystem path."""
    return os.path.exists(path) or path.startswith((".", "/", "~")) or path.count("/") > 1 or path.endswith("/")


_PROCESS_MEMO: dict[str, Any] = {}
"""The memo when no directory may be written (``memo_dir=None``, i.e. --no-cache): this process only."""
_DEFAULT_DIR: Any = object()
"""``memo_dir`` default: the default cache directory (HARNESS_CACHE_DIR, XDG_CACHE_HOME, ~/.cache)."""
MEMO_NAME = "fingerprints.json"


def _memo_file(memo_dir: Any) -> Path | None:
    if memo_dir is None:
        return None
    if memo_dir is _DEFAULT_DIR:
        from harness.model.cache import default_cache_dir

        memo_dir = default_cache_dir()
    return Path(memo_dir).expanduser() / MEMO_NAME


def _file_digest(path: Path, memo: dict[str, Any]) -> str:
    st = path.stat()
    key = str(path.resolve())
    hit = memo.get(key)
    if isinstance(hit, dict) and (hit.get("size"), hit.get("mtime_ns")) == (st.st_size, st.st_mtime_ns) \
            and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    memo[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
    return memo[key]["sha256"]


def file_sha256(path: Path, memo_dir: Any = _DEFAULT_DIR) -> str:
    """sha256 of one file, memoized on (path, size, mtime) like model fingerprints (see model_fingerprint)."""
    with _memo_lock:
        memo_path, memo = _load_memo(memo_dir)
        digest = _file_digest(path, memo)
        _save_memo(memo_path, memo)
    return digest


def _load_memo(memo_dir: Any) -> tuple[Path | None, dict[str, Any]]:
    memo_path = _memo_file(memo_dir)
    if memo_path is None:
        return None, _PROCESS_MEMO
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        return memo_path, {}
    return memo_path, memo if isinstance(memo, dict) else {}


def _save_memo(memo_path: Path | None, memo: dict[str, Any]) -> None:
    if memo_path is None:
        return
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, memo_path)
    except OSError:
        pass  # memoization is an optimisation; the digest is still exact


# Files beside the weights that do not change what the model generates (training logs, notes).
_NOT_MODEL_FILES = ("training_report.json", "build_info.json", "README.md")


def _dir_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES
                  and p.name not in _NOT_MODEL_FILES and not p.name.endswith(".summary.json")
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def resolve_model_dir(path: str) -> Path | None:
    """The local directory holding ``path``'s files (a hub id resolves through the local HF cache only)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    if looks_local(path):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, local_files_only=True))
    except Exception:
        return None


def model_fingerprint(path: str, adapter: str | None = None, memo_dir: Any = _DEFAULT_DIR) -> str:
    """``sha256:<hex>`` over config, tokenizer and weight files (+ adapter files).

    Each file's digest is memoized on (path, size, mtime) in ``memo_dir``/fingerprints.json (by
    default the default cache directory; pass the run's cache directory), so a large checkpoint is
    read once, not on every run. ``memo_dir=None`` (--no-cache) writes nothing: the memo lives in
    this process only.
    """
    directory = resolve_model_dir(path)
    if directory is None:
        raise ModelLoadError(f"--model {path}: no local files found to fingerprint. Fix: pass a local model "
                             "directory, or download the hub model once so it is in the Hugging Face cache.")
    dirs = [("model", directory)] + ([("adapter", Path(adapter).expanduser())] if adapter else [])
    with _memo_lock:
        memo_path, memo = _load_memo(memo_dir)
        outer = hashlib.sha256()
        for role, d in dirs:
            files = _dir_files(d)
            if not files:
                raise ModelLoadError(f"{d}: no model files (config, weights) found. Fix: point --{role} at a "
                                     "directory written by save_pretrained.")
            for f in files:
                outer.update(f"{role}:{f.relative_to(d).as_posix()}:{_file_digest(f, memo)}\n".encode())
        _save_memo(memo_path, memo)
    return "sha256:" + outer.hexdigest()


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """Pick (torch.device, torch.dtype): CUDA with bf16 (fp16 on older GPUs) when available, else CPU fp32."""
    import torch

    if device not in DEVICES:
        raise ModelLoadError(f"--device {device}: unknown device; {did_you_mean(device, DEVICES)}.")
    if dtype not in DTYPES:
        raise ModelLoadError(f"--dtype {dtype}: unknown dtype; {did_you_mean(dtype, DTYPES)}.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda: no CUDA device is visible to torch. Fix: use --device cpu or auto, "
                             "or install a CUDA build of torch.")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if dtype == "auto":
        if dev.type == "cuda":
            dt = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dt = torch.float32
    else:
        dt = getattr(torch, dtype)
    if dev.type == "cpu" and dt == torch.float16:
        raise ModelLoadError("--dtype float16 on CPU is not supported for generation. Fix: use float32 or bfloat16.")
    return dev, dt


def context_length_of(config: Any, tokenizer: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 10**7 else 2048


def has_chat_template(path: str) -> bool | None:
    """Whether a local model directory's tokenizer has a chat template, read from its files without
    importing transformers (None: not decidable from files, e.g. a hub id)."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        return None
    if (directory / "chat_template.jinja").is_file() or (directory / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bool(config.get("chat_template"))


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelLoadError(f"{path}: the tokenizer has neither a pad nor an eos token, so batches cannot be "
                                 "padded. Fix: set pad_token in tokenizer_config.json.")
        tok.pad_token = tok.eos_token
    return tok


_ADAPTER_FIELDS: dict[str, tuple[Any, str]] = {
    "r": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer"),
    "lora_alpha": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "lora_dropout": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1,
                     "a number in [0, 1)"),
    "target_modules": (lambda v: v is None or isinstance(v, str) or (isinstance(v, list) and all(
        isinstance(x, str) for x in v)), "a module name, a list of names or null"),
    "fan_in_fan_out": (lambda v: isinstance(v, bool), "true or false"),
    "bias": (lambda v: v in ("none", "all", "lora_only"), "'none', 'all' or 'lora_only'"),
    "modules_to_save": (lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                        "a list of module names or null"),
}
"""Fields of adapter_config.json that peft uses without checking their type (a wrong one gives a TypeError)."""


def _adapter_fail(target: Path, problem: str, fix: str) -> ModelLoadError:
    return ModelLoadError(f"--adapter: {target}: {problem}. Fix: {fix}.")


def _check_adapter_files(adir: Path) -> None:
    """adapter_config.json is a JSON object with sane fields, and a weights file is there."""
    from peft import PeftType

    cfg_path = adir / "adapter_config.json"
    resave = "re-save the adapter with peft's save_pretrained (or `harness finetune`)"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _adapter_fail(cfg_path, f"cannot read it ({exc})", resave) from None
    except ValueError as exc:
        raise _adapter_fail(cfg_path, f"not valid JSON ({exc})", f"repair the file, or {resave}") from None
    if not isinstance(cfg, dict):
        raise _adapter_fail(cfg_path, f"not a JSON object but {type(cfg).__name__}", resave)
    kinds = [t.value for t in PeftType]
    if cfg.get("peft_type") not in kinds:
        problem = "field 'peft_type' is missing" if "peft_type" not in cfg else \
            f"field 'peft_type' is {cfg['peft_type']!r}; {did_you_mean(str(cfg['peft_type']), kinds)}"
        raise _adapter_fail(cfg_path, problem, f"set it to the adapter's method (e.g. \"LORA\"), or {resave}")
    for name, (ok, expected) in _ADAPTER_FIELDS.items():
        if name in cfg and not ok(cfg[name]):
            raise _adapter_fail(cfg_path, f"field '{name}' is {cfg[name]!r}, not {expected}",
                                f"correct that field, or {resave}")
    if not any((adir / n).is_file() for n in ("adapter_model.safetensors", "adapter_model.bin")):
        raise _adapter_fail(adir, "no adapter weights (adapter_model.safetensors or adapter_model.bin) beside "
                            "adapter_config.json", f"copy the weights file into that directory, or {resave}")


def _attach_adapter(model: Any, path: str, adapter: str) -> Any:
    import pickle

    from peft import PeftModel

    adir = Path(adapter).expanduser()
    if not (adir / "adapter_config.json").is_file():
        raise ModelLoadError(f"--adapter {adapter}: no adapter_config.json there. Fix: point --adapter at a "
                             "directory written by peft's save_pretrained (or `harness finetune`).")
    _check_adapter_files(adir)
    try:
        return PeftModel.from_pretrained(model, str(adir), is_trainable=False)
    except pickle.UnpicklingError:
        raise _adapter_fail(adir / "adapter_model.bin", "a pickle file that cannot be loaded safely (torch.load "
                            "with weights_only=True refuses it: it holds objects other than tensors, or is damaged)",
                            "convert it to adapter_model.safetensors (safetensors.torch.save_file on its tensors, "
                            "where you trust its source), or re-save the adapter with peft's save_pretrained") from None
    except Exception as exc:  # noqa: BLE001 - every failure here is a bad adapter; classify it for the message
        lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
        detail = [x for x in lines if "size mismatch" in x or "not found" in x]
        first = (detail or lines or [type(exc).__name__])[0][:300]
        if type(exc).__name__ == "SafetensorError":
            raise _adapter_fail(adir / "adapter_model.safetensors", f"damaged or not a safetensors file ({first})",
                                "copy the file again, or re-save the adapter with peft's save_pretrained") from None
        if detail or "state_dict" in str(exc):
            raise ModelLoadError(f"--adapter {adapter} does not fit the base model {path}: {first}. Fix: pass the "
                                 "base model the adapter was trained on (see base_model_name_or_path in its "
                                 "adapter_config.json).") from None
        raise _adapter_fail(adir, f"peft cannot load this adapter: {first}", "check the fields of "
                            "adapter_config.json, or re-save the adapter with peft's save_pretrained") from None


def load_model(path: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
               trust_remote_code: bool = False, fingerprint: str | None = None) -> LoadedModel:
    """Load model + tokenizer (+ adapter) in eval mode; errors name the path and the fix."""
    import torch
    from transformers import AutoModelForCausalLM

    if looks_local(path) and not Path(path).expanduser().is_dir():
        raise ModelLoadError(f"--model {path}: directory not found. Fix: pass a directory written by "
                             "save_pretrained, or a Hugging Face hub id available offline.")
    dev, dt = resolve_device_dtype(device, dtype)
    try:
        tokenizer = load_tokenizer(path, trust_remote_code)
        kwargs: dict[str, Any] = {"dtype": dt, "trust_remote_code": trust_remote_code}
        if dev.type == "cuda" and device == "auto" and torch.cuda.device_count() > 1:
            kwargs["device_map"] = "auto"  # shard a large model across the visible GPUs (accelerate)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # OSError, ValueError, safetensors' SafetensorError, ...: all mean "cannot load"
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"--model {path}: cannot load the model or tokenizer: {first}. Fix: check that the "
                             "directory holds config.json, tokenizer files and complete weights (re-save it with "
                             "save_pretrained); hub ids need the files in the local cache when offline; custom "
                             "architectures need --trust-remote-code.") from None
    if "device_map" not in kwargs:
        model.to(dev)
    if adapter:
        model = _attach_adapter(model, path, adapter)
    model.eval()
    model.requires_grad_(False)
    fp = fingerprint or model_fingerprint(path, adapter)
    return LoadedModel(model=model, tokenizer=tokenizer, path=path, adapter=adapter, fingerprint=fp,
                       device=dev, dtype=dt, context_length=context_length_of(model.config, tokenizer))
