"""Batched, left-padded sampling where every sample has its own seed.

HF ``generate`` draws all rows of a batch from one random stream, so a sample would change with
batch size, order and sharding. Here each row samples from its own ``torch.Generator`` seeded by
``sample_seed(seed, prompt, index)``: HF ``generate`` still runs the loop (KV cache, EOS, padding,
any architecture), the usual temperature/top-k/top-p warpers shape the distribution, and a final
logits processor draws the token for each row with that row's generator (inverse-CDF sampling)
and leaves only it for the greedy step. Same seed => same text, whatever the batching (up to
floating-point differences between padded and unpadded attention).

    >>> from harness.model.generation import Generator, GenerationRequest       # doctest: +SKIP
    >>> gen = Generator(load_model("fixtures/tiny-gpt2", device="cpu"))   # doctest: +SKIP
    >>> gen.generate([GenerationRequest("Hello", 0, seed=1, decoding=Decoding())])[0].text  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.model.keys import sample_seed
from harness.suites.specs import Decoding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str          # the rendered prompt text ("" = unconditional, BOS only)
    sample_index: int
    seed: int
    decoding: Decoding
    history: tuple[tuple[str, str], ...] = ()   # earlier chat turns (role, content), used with a chat template


@dataclass(frozen=True)
class Generation:
    text: str
    n_prompt_tokens: int
    n_new_tokens: int
    truncated: bool
    finish_reason: str   # "eos" | "length"


class _PerRowSampler:
    """Logits processor: sample one token per row from that row's generator, mask all others."""

    def __init__(self, generators: list[Any]) -> None:
        self.generators = generators

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        probs = torch.softmax(scores.float(), dim=-1)
        cdf = probs.cumsum(dim=-1)
        u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.generators])
        u = (u.to(cdf.device, torch.float32) * cdf[:, -1]).unsqueeze(-1)
        idx = torch.searchsorted(cdf, u).clamp_(max=scores.shape[-1] - 1)
        # Never pick a token the warpers removed (probability exactly 0) because of rounding.
        bad = probs.gather(-1, idx) <= 0
        if bad.any():
            idx = torch.where(bad, probs.argmax(dim=-1, keepdim=True), idx)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, idx, 0.0)


class Generator:
    """Turns :class:`GenerationRequest` lists into :class:`Generation` lists, batched by prompt length."""

    def __init__(self, loaded: Any, batch_size: int | str = "auto", chat_template: str = "auto") -> None:
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.chat_template = chat_template
        self.batch_size = batch_size
        self._auto = batch_size == "auto"
        if self._auto:
            self.batch_size = 64  # CPU: 64 measured 1.3x faster than 32 on the bundled model (bench/)
        self.truncated_prompts: set[str] = set()

    def encode(self, prompt: str, max_new_tokens: int, chat: bool = False,
               history: tuple[tuple[str, str], ...] = ()) -> tuple[list[int], bool]:
        """Token ids for ``prompt`` (chat template applied when ``chat``), left-truncated to fit the context."""
        tok = self.tokenizer
        if prompt == "":
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            return [start], False
        if chat:
            turns = [{"role": r, "content": c} for r, c in history]
            ids = tok.apply_chat_template([*turns, {"role": "user", "content": prompt}], add_generation_prompt=True,
                                          tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            ids = list(ids)
        else:
            ids = tok(prompt, add_special_tokens=True)["input_ids"]
        room = self.loaded.context_length - max_new_tokens
        if room < 1:
            from harness.errors import HarnessError

            raise HarnessError(f"max_new_tokens={max_new_tokens} does not fit the model's context of "
                               f"{self.loaded.context_length} tokens. Fix: lower max_new_tokens in the suite's "
                               "decoding or with --max-new-tokens.")
        if len(ids) > room:
            if prompt not in self.truncated_prompts:
                log.warning("prompt of %d tokens truncated to the last %d to fit the context: %.60r",
                            len(ids), room, prompt)
                self.truncated_prompts.add(prompt)
            return ids[-room:], True
        return ids, False

    def generate(self, requests: Sequence[GenerationRequest], progress: bool = False, chat: bool = False,
                 on_batch: Callable[[list[int], list[Generation]], None] | None = None) -> list[Generation]:
        """Generate every request; ``on_batch(indices, generations)`` is called as batches finish."""
        if not requests:
            return []
        encoded = [self.encode(r.prompt, r.decoding.max_new_tokens, chat, r.history) for r in requests]
        # Length-sorted batches of identical decoding settings: little padding, one generate call each.
        order = sorted(range(len(requests)), key=lambda i: (requests[i].decoding.generation_dict().__repr__(),
                                                            len(encoded[i][0])))
        results: list[Generation | None] = [None] * len(requests)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(requests), desc="generating", unit="sample", delay=2.0, leave=False)
        start = 0
        while start < len(order):
            size = int(self.batch_size)
            batch = [i for i in order[start:start + size]]
            same = requests[batch[0]].decoding.generation_dict()
            batch = [i for i in batch if requests[i].decoding.generation_dict() == same]
            try:
                out = self._generate_batch([requests[i] for i in batch], [encoded[i] for i in batch])
            except Exception as exc:  # back off on CUDA out-of-memory when the size was chosen for the user
                if self._auto and _is_oom(exc) and size > 1:
                    self.batch_size = max(1, size // 2)
                    log.warning("out of memory at batch size %d; retrying with %d", size, self.batch_size)
                    _empty_cuda_cache()
                    continue
                raise
            for i, g in zip(batch, out):
                results[i] = g
            if on_batch is not None:
                on_batch(batch, out)
            if bar is not None:
                bar.update(len(batch))
            start += len(batch)
        if bar is not None:
            bar.close()
        return [r for r in results if r is not None]

    def generate_unconditional(self, n: int, seed: int, decoding: Decoding, progress: bool = False) -> list[Generation]:
        """``n`` samples from BOS alone (SGEAT's self-generation)."""
        return self.generate([GenerationRequest("", i, sample_seed(seed, "", i), decoding) for i in range(n)],
                             progress=progress)

    def _generate_batch(self, requests: list[GenerationRequest], encoded: list[tuple[list[int], bool]]) -> list[Generation]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        tok = self.tokenizer
        d = requests[0].decoding
        width = max(len(ids) for ids, _ in encoded)
        pad = tok.pad_token_id
        input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, (ids, _) in enumerate(encoded):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        device = self.loaded.device if self.loaded.device.type != "cuda" else next(self.loaded.model.parameters()).device
        generators = [torch.Generator().manual_seed(r.seed) for r in requests]
        processors = []
        if d.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(d.temperature))
        if d.top_k:
            processors.append(TopKLogitsWarper(d.top_k))
        if d.top_p < 1.0:
            processors.append(TopPLogitsWarper(d.top_p))
        processors.append(_PerRowSampler(generators))
        eos = tok.eos_token_id
        config = GenerationConfig(do_sample=False, max_new_tokens=d.max_new_tokens, pad_token_id=pad,
                                  eos_token_id=eos, bos_token_id=tok.bos_token_id)
        with torch.inference_mode():
            out = self.loaded.model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                             generation_config=config,
                                             logits_processor=LogitsProcessorList(processors))
        new = out[:, width:].cpu().tolist()
        results = []
        for (ids, truncated), row in zip(encoded, new):
            finish = "length"
            if eos is not None and eos in row:
                row = row[:row.index(eos)]
                finish = "eos"
            text = tok.decode(row, skip_special_tokens=True)
            results.append(Generation(text=text, n_prompt_tokens=len(ids), n_new_tokens=len(row),
                                      truncated=truncated, finish_reason=finish))
        return results


def _is_oom(exc: Exception) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return "out of memory" in str(exc).lower()


def _empty_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
