"""The options of one run (:class:`RunOptions`): what the pytest options and ini settings become,
and what a library user passes to :class:`~harness.run.session.HarnessSession`."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError, did_you_mean

ROLES = ("candidate", "baseline")
CHOICES = {"device": ("auto", "cpu", "cuda"), "dtype": ("auto", "float32", "bfloat16", "float16"),
           "scorer_precision": ("fp32", "bf16", "int8"), "chat_template": ("auto", "on", "off"),
           "backend": ("local", "ray"), "correction": ("holm", "bh"),
           "on_inconclusive": (None, "fail", "warn", "pass"), "on_inconclusive_default": (None, "fail", "warn", "pass")}
POSITIVE = ("samples", "max_new_tokens", "subset", "bold_per_group")   # None, or an int >= 1


@dataclass(frozen=True)
class RunOptions:
    model: str
    adapter: str | None = None
    baseline_model: str | None = None
    baseline_adapter: str | None = None
    baseline: str | None = None         # a saved results file as the reference (--baseline FILE)
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | str = "auto"
    samples: int | None = None          # overrides every suite's k
    max_new_tokens: int | None = None
    seed: int = 0
    toxicity_scorer: str = "auto"
    scorer_label: str | None = None      # hf: scorers: the toxic class when the config is ambiguous
    detoxify_checkpoint: str | None = None
    detoxify_config_dir: str | None = None
    score_batch_size: int | str = "auto"  # Detoxify rows per batch, or auto (a padded-token budget)
    scorer_precision: str = "fp32"       # fp32 | bf16 | int8 (part of the scorer fingerprint)
    trust_remote_code: bool = False
    chat_template: str = "auto"          # auto | on | off (on/off override the suites)
    cache_dir: str | None = None
    use_cache: bool = True
    progress: bool = True
    backend: str = "local"              # local | ray
    ray_address: str | None = None
    ray_workers: int = 2
    shard_wait_s: float = 300.0         # xdist: how long to wait for another worker's samples without progress
    alpha: float = 0.05                 # significance level of every regression gate
    correction: str = "holm"            # within each family: holm | bh
    fail_on_regression: tuple[tuple[str, float], ...] = ()   # extra (metric, margin) regression gates
    on_inconclusive: str | None = None  # fail | warn | pass: overrides every gate's (None: gate's, else warn)
    on_inconclusive_default: str | None = None   # for gates that set none (the ini harness_on_inconclusive)
    ratings: str | None = None          # human ratings file (harness ratings import)
    ratings_model: str | None = None
    subset: int | None = None           # values suites: a seeded, stratified, nested subset of N prompts
    bold_per_group: int | None = None   # bold suites: prompts per group (overrides options.per_group)
    perturb: tuple[str, ...] | None = None  # --perturb: perturbation names for every values suite (() = none)

    def __post_init__(self) -> None:
        """The checks the pytest options get when parsed, for library users too (a HarnessError
        naming the field and the valid values)."""
        def bad(name: str, valid: str) -> HarnessError:
            return HarnessError(f"RunOptions.{name} = {getattr(self, name)!r}: {valid}. Fix: pass a valid value "
                                "(the pytest option of the same name documents it).")

        if not isinstance(self.model, str) or not self.model:
            raise bad("model", "expected a model directory or hub id (a non-empty string)")
        for name, valid in CHOICES.items():
            value = getattr(self, name)
            if value not in valid:
                raise bad(name, did_you_mean(str(value), [v for v in valid if v is not None]))
        for name in POSITIVE:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise bad(name, "expected None or a positive integer")
        for name in ("batch_size", "score_batch_size"):
            value = getattr(self, name)
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise bad(name, 'expected "auto" or a positive integer')
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise bad("seed", "expected an integer")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise bad("alpha", "expected a significance level in (0, 1)")
