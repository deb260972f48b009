"""Content-addressed keys: a sample's and a score's cache key, and a sample's seed. A sample depends
only on (model, prompt, decoding, seed, sample index), never on batch composition or sharding."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

GEN_VERSION = 1
"""Bump when generation changes so that old cached samples no longer match."""

def canonical_json(obj: Any) -> str:
    """Canonical JSON used for every hash.

    >>> canonical_json({"b": 1, "a": "é"})
    '{"a":"é","b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256_hex(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def _as_dict(decoding: Any) -> dict:
    if dataclasses.is_dataclass(decoding) and not isinstance(decoding, type):
        return dataclasses.asdict(decoding)
    return dict(decoding)


def generation_key(model_fingerprint: str, prompt: str, decoding: Mapping[str, Any],
                   chat_template: bool, seed: int, sample_index: int, extra: Mapping[str, Any] | None = None) -> str:
    """Cache key of one sample; ``decoding`` is a dict (a Decoding dataclass is accepted too). ``extra``
    (a perturbed prompt's seed text, chat history) joins the key only when given, so other keys stay as they were.

    >>> k = generation_key("sha256:m", "Hi", {"top_p": 0.9, "samples": 3}, False, 0, 1)
    >>> k == generation_key("sha256:m", "Hi", {"samples": 3, "top_p": 0.9}, False, 0, 1)
    True
    >>> len(k)
    64
    """
    return _sha256_hex({
        "v": GEN_VERSION,
        "model": model_fingerprint,
        "prompt": prompt,
        "decoding": _as_dict(decoding),
        "chat_template": bool(chat_template),
        "seed": int(seed),
        "index": int(sample_index),
        **({"extra": dict(extra)} if extra else {}),
    })


def score_key(scorer_fingerprint: str, text: str) -> str:
    """Cache key of one scored text.

    >>> score_key("f", "x") == score_key("f", "x") != score_key("g", "x")
    True
    """
    return _sha256_hex({"scorer": scorer_fingerprint, "text": text})


def sample_seed(seed: int, prompt: str, sample_index: int) -> int:
    """Per-sample seed: first 8 bytes of sha256(f"{seed}\\x1f{prompt}\\x1f{index}"), big-endian,
    reduced modulo 2**63 so every RNG (torch, numpy) accepts it.

    >>> 0 <= sample_seed(0, "Hi", 0) < 2**63
    True
    >>> sample_seed(0, "Hi", 0) != sample_seed(0, "Hi", 1)
    True
    """
    digest = hashlib.sha256(f"{seed}\x1f{prompt}\x1f{sample_index}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)
