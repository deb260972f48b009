"""``--backend ray``: generation sharded over Ray actors, one model replica per actor.

Works on a local Ray instance (``ray.init(num_cpus=N)``) or a cluster (``--ray-address`` /
``RAY_ADDRESS``). Every sample carries its own seed, so the samples are identical to a
single-process run whatever the sharding. Each actor takes one GPU when CUDA is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from harness.errors import HarnessError


class _Replica:
    """The actor body: loads the model once, then generates shards of requests."""

    def __init__(self, path: str, adapter: str | None, device: str, dtype: str, trust_remote_code: bool,
                 batch_size: Any, fingerprint: str, threads: int) -> None:
        import torch

        from harness.model.generation import Generator
        from harness.model.models import load_model

        torch.set_num_threads(max(1, threads))
        self.generator = Generator(load_model(path, adapter, device, dtype, trust_remote_code, fingerprint=fingerprint),
                                   batch_size)

    def generate(self, requests: list[Any], chat: bool) -> tuple[list[Any], list[str]]:
        out = self.generator.generate(requests, chat=chat)
        truncated = sorted(self.generator.truncated_prompts)
        self.generator.truncated_prompts.clear()
        return out, truncated


class RayGenerator:
    """Same interface as :class:`harness.model.generation.Generator` (``generate`` with ``on_batch``)."""

    def __init__(self, options: Any, path: str, adapter: str | None, fingerprint: str) -> None:
        try:
            import ray
        except ImportError:
            raise HarnessError("--backend ray needs Ray: pip install 'harness[ray]' (or pip install ray).") from None
        import torch

        self.ray = ray
        if not ray.is_initialized():
            address = options.ray_address or os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "include_dashboard": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = options.ray_workers
            ray.init(**kwargs)
        use_gpu = options.device != "cpu" and torch.cuda.is_available()
        actor = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)(_Replica)
        threads = 1 if not use_gpu else 4
        self.actors = [actor.remote(path, adapter, options.device, options.dtype, options.trust_remote_code,
                                    options.batch_size, fingerprint, threads) for _ in range(options.ray_workers)]
        self.truncated_prompts: set[str] = set()

    def generate(self, requests: Sequence[Any], progress: bool = False, chat: bool = False,
                 on_batch: Callable[[list[int], list[Any]], None] | None = None) -> list[Any]:
        if not requests:
            return []
        n = len(self.actors)
        # Deal length-sorted requests round-robin so every replica gets similar work and little padding.
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt))
        shards = [order[w::n] for w in range(n)]
        futures = {self.actors[w].generate.remote([requests[i] for i in shard], chat): shard
                   for w, shard in enumerate(shards) if shard}
        results: list[Any] = [None] * len(requests)
        pending = list(futures)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(requests), desc="generating (ray)", unit="sample", delay=2.0, leave=False)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                outs, truncated = self.ray.get(ref)
                shard = futures[ref]
                for i, g in zip(shard, outs):
                    results[i] = g
                self.truncated_prompts.update(truncated)
                if on_batch is not None:
                    on_batch(shard, outs)
                if bar is not None:
                    bar.update(len(shard))
        if bar is not None:
            bar.close()
        return results
