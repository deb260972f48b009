"""harness.measure.scoring: offline scorers, safe Detoxify checkpoint loading, loud fallback, NaN is an error."""

from __future__ import annotations

import re
import shutil

import pytest

import harness.plugin  # noqa: F401  (kept in sys.modules for pytester's in-process runs)
from harness.measure import scoring
from harness.errors import ScorerError
from harness.measure.scoring import DetoxifyScorer, ProfanityScorer, load_scorer

STANDARD_LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
TEXTS = ["you are a stupid idiot", "have a nice day", "hello world", "", "why do people hate",
         "thank you", "kill"]


class NotPlainData:
    """Pickled into a checkpoint: weights_only=True must refuse to rebuild it."""

    def __init__(self) -> None:
        self.payload = "would run code on unpickling"


# ---- profanity ---------------------------------------------------------------------------------
def test_profanity_ranks_insult_above_threshold_and_kind_text_below():
    scorer = ProfanityScorer()
    rude, kind = scorer.score(["you are a stupid idiot", "have a nice day"])
    assert rude["toxicity"] > 0.5 > kind["toxicity"]
    assert scorer.labels == ("toxicity",) and scorer.name == "profanity"
    assert scorer.fingerprint.startswith("alt-profanity-check==")
    assert scorer.score([]) == []


def test_profanity_scores_empty_text_instead_of_dropping_it():
    (row,) = ProfanityScorer().score([""])
    assert 0.0 <= row["toxicity"] <= 1.0


# ---- Detoxify checkpoints ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def detox(tiny_detoxify):
    return DetoxifyScorer(tiny_detoxify, batch_size=3)


def test_detoxify_loads_offline_with_standard_labels(detox, tiny_detoxify):
    assert detox.labels == STANDARD_LABELS
    assert detox.name == f"detoxify:{tiny_detoxify.stem}"
    assert detox.fingerprint.startswith(detox.name + ":sha256:")
    rows = detox.score(TEXTS)
    assert len(rows) == len(TEXTS)
    for row in rows:
        assert tuple(row) == STANDARD_LABELS
        assert all(0.0 <= v <= 1.0 for v in row.values())


def test_detoxify_batches_give_the_same_scores_as_one_text_at_a_time(detox):
    batched = detox.score(TEXTS)                       # 7 texts in batches of 3
    single = [detox.score([t])[0] for t in TEXTS]
    for b, s in zip(batched, single):
        assert b == pytest.approx(s, abs=1e-5)
    assert len({round(r["toxicity"], 6) for r in batched}) > 1   # different texts, different scores


def test_detoxify_explicit_config_dir(tiny_detoxify, tmp_path):
    ckpt = tmp_path / "elsewhere.ckpt"
    shutil.copy(tiny_detoxify, ckpt)
    scorer = DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent, name="detoxify-original")
    assert scorer.name == "detoxify-original" and scorer.labels == STANDARD_LABELS
    assert scorer.score(["hello"])[0] == pytest.approx(DetoxifyScorer(tiny_detoxify).score(["hello"])[0])


def test_detoxify_without_config_dir_offline_is_a_scorer_error(tiny_detoxify, tmp_path):
    ckpt = tmp_path / "alone.ckpt"            # no config.json beside it, model_type is not a local path
    shutil.copy(tiny_detoxify, ckpt)
    with pytest.raises(ScorerError, match="--detoxify-config-dir"):
        DetoxifyScorer(ckpt)


def test_checkpoint_with_pickled_object_is_refused(tiny_detoxify, tmp_path):
    import torch

    ckpt = tmp_path / "evil.ckpt"
    data = torch.load(tiny_detoxify, weights_only=True)
    data["config"]["extra"] = NotPlainData()
    torch.save(data, ckpt)
    with pytest.raises(ScorerError, match="not a loadable Detoxify checkpoint") as info:
        DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent)
    assert "Unpickling" in str(info.value) or "weights_only" in str(info.value)


def test_checkpoint_with_foreign_architecture_is_refused(tiny_detoxify, tmp_path):
    import torch

    ckpt = tmp_path / "odd.ckpt"
    data = torch.load(tiny_detoxify, weights_only=True)
    data["config"]["arch"]["args"]["model_name"] = "AutoModel"
    torch.save(data, ckpt)
    with pytest.raises(ScorerError, match="not a Detoxify architecture"):
        DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent)


def test_truncated_checkpoint_is_a_scorer_error(tiny_detoxify, tmp_path):
    ckpt = tmp_path / "cut.ckpt"
    ckpt.write_bytes(tiny_detoxify.read_bytes()[:2000])
    with pytest.raises(ScorerError, match=re.escape(str(ckpt))):
        DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ScorerError, match="file not found"):
        DetoxifyScorer(tmp_path / "missing.ckpt")
    with pytest.raises(ScorerError, match="file not found"):
        load_scorer("detoxify-original", checkpoint=str(tmp_path / "missing.ckpt"))


# ---- load_scorer -------------------------------------------------------------------------------
def test_unknown_scorer_did_you_mean():
    with pytest.raises(ScorerError, match=r"unknown scorer.*did you mean 'profanity'"):
        load_scorer("profanty")


def test_load_scorer_profanity():
    scorer, warnings = load_scorer("profanity")
    assert scorer.name == "profanity" and warnings == []


def test_load_scorer_with_checkpoint(tiny_detoxify):
    scorer, warnings = load_scorer("detoxify-original", checkpoint=str(tiny_detoxify))
    assert warnings == [] and scorer.name == "detoxify-original" and scorer.labels == STANDARD_LABELS


@pytest.fixture
def offline_empty_torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    return home


def test_auto_falls_back_to_profanity_loudly(offline_empty_torch_home):
    scorer, warnings = load_scorer("auto")
    assert scorer.name == "profanity"
    assert len(warnings) == 1 and "FALLBACK" in warnings[0]
    assert str(offline_empty_torch_home) in warnings[0]          # says where it looked


def test_explicit_detoxify_without_weights_is_an_error(offline_empty_torch_home):
    with pytest.raises(ScorerError, match="Detoxify weights unavailable"):
        load_scorer("detoxify-original")
    with pytest.raises(ScorerError, match="Detoxify weights unavailable"):
        load_scorer("detoxify-unbiased")


def test_auto_uses_a_checkpoint_in_the_torch_hub_cache(offline_empty_torch_home, tiny_detoxify):
    from detoxify.detoxify import MODEL_URLS

    target = offline_empty_torch_home / "hub" / "checkpoints" / MODEL_URLS["original"].rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    shutil.copy(tiny_detoxify, target)
    scorer, warnings = load_scorer("auto", config_dir=str(tiny_detoxify.parent))
    assert warnings == [] and scorer.name == "detoxify-original" and scorer.labels == STANDARD_LABELS


# ---- unscorable samples ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, -0.1, 1.5])
def test_check_refuses_unscorable_values(value):
    with pytest.raises(ScorerError, match="cannot be scored"):
        scoring._check("fake", ["some text"], [{"toxicity": value}])


def test_check_refuses_missing_rows_and_keeps_zero():
    with pytest.raises(ScorerError, match="1 scores for 2 texts"):
        scoring._check("fake", ["a", "b"], [{"toxicity": 0.1}])
    rows = [{"toxicity": 0.0}, {"toxicity": 1.0}]
    assert scoring._check("fake", ["a", "b"], rows) == rows


def test_profanity_scorer_nan_raises(monkeypatch):
    scorer = ProfanityScorer()
    monkeypatch.setattr(scorer, "_predict", lambda texts: [float("nan")] * len(texts))
    with pytest.raises(ScorerError, match="toxicity=nan"):
        scorer.score(["hello"])


def test_detoxify_nan_logits_raise(detox, monkeypatch):
    import torch

    real_forward = detox.model.forward

    def nan_forward(*args, **kwargs):
        out = real_forward(*args, **kwargs)
        out.logits = torch.full_like(out.logits, float("nan"))
        return out

    monkeypatch.setattr(detox.model, "forward", nan_forward)
    with pytest.raises(ScorerError, match="cannot be scored"):
        detox.score(["hello"])



# ---- checkpoint config structure (reliability item 12) --------------------------------------------
def _set_num_classes_text(data):
    data["config"]["arch"]["args"]["num_classes"] = "6"


def _drop_num_classes(data):
    del data["config"]["arch"]["args"]["num_classes"]


def _args_as_list(data):
    data["config"]["arch"]["args"] = list(data["config"]["arch"]["args"].items())


def _classes_as_text(data):
    data["config"]["dataset"]["args"]["classes"] = "toxic"


def _too_few_classes(data):
    data["config"]["dataset"]["args"]["classes"] = ["toxic", "insult"]


def _config_as_list(data):
    data["config"] = [1, 2]


@pytest.mark.parametrize("break_it, field, fix", [
    (_drop_num_classes, "config.arch.args.num_classes", "set it to the integer 6"),
    (_set_num_classes_text, "config.arch.args.num_classes", "set it to the integer 6"),
    (_args_as_list, "config.arch.args", "as a dict"),
    (_classes_as_text, "config.dataset.args.classes", "label names"),
    (_too_few_classes, "config.arch.args.num_classes", "make the two agree"),
    (_config_as_list, "config", "as a dict"),
], ids=["missing-num-classes", "string-num-classes", "args-list", "classes-string", "count-mismatch",
        "config-list"])
def test_malformed_checkpoint_config_names_file_field_and_fix(tiny_detoxify, tmp_path, break_it, field, fix):
    import torch

    ckpt = tmp_path / "bad.ckpt"
    data = torch.load(tiny_detoxify, weights_only=True)
    break_it(data)
    torch.save(data, ckpt)
    with pytest.raises(ScorerError) as info:
        DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent)
    message = str(info.value)
    assert str(ckpt) in message and f"field {field} " in message and fix in message and "Fix:" in message


def test_model_type_is_needed_only_without_a_config_dir(tiny_detoxify, tmp_path):
    import torch

    ckpt = tmp_path / "no-type.ckpt"
    data = torch.load(tiny_detoxify, weights_only=True)
    del data["config"]["arch"]["args"]["model_type"]
    torch.save(data, ckpt)
    assert DetoxifyScorer(ckpt, config_dir=tiny_detoxify.parent).labels == STANDARD_LABELS
    with pytest.raises(ScorerError, match=r"field config\.arch\.args\.model_type .*--detoxify-config-dir"):
        DetoxifyScorer(ckpt)


# ---- length-sorted, deduplicated batches --------------------------------------------------------
def _close(rows, other, tol):
    return len(rows) == len(other) and all(a == pytest.approx(b, abs=tol) for a, b in zip(rows, other))


def _record_batches(scorer, monkeypatch):
    shapes = []
    real_forward = scorer.model.forward

    def forward(*args, **kwargs):
        shapes.append((tuple(kwargs["input_ids"].shape), int(kwargs["attention_mask"].sum())))
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(scorer.model, "forward", forward)
    return shapes


MIXED = ["kill", "you are a stupid idiot have a nice day and thank you " * 3, "hello", "why do people hate",
         "kill", "thank you", "hello world this is good " * 2, "hello", "", "i love my people"]


def test_scoring_runs_each_distinct_text_once_in_length_sorted_batches(detox, monkeypatch):
    single = {t: detox.score([t])[0] for t in set(MIXED)}
    shapes = _record_batches(detox, monkeypatch)
    rows = detox.score(MIXED)                                        # batch_size=3
    for text, row in zip(MIXED, rows):
        assert row == pytest.approx(single[text], abs=1e-5)
    assert rows[0] is not rows[4]                                    # duplicates get their own dicts
    assert sum(n for (n, _), _ in shapes) == len(set(MIXED))         # duplicates scored once
    widths = [w for (_, w), _ in shapes]
    assert widths == sorted(widths)                                  # shortest texts first
    padded, real = sum(n * w for (n, w), _ in shapes), sum(t for _, t in shapes)
    arrival = [detox.tokenizer(list(dict.fromkeys(MIXED))[i:i + 3], padding=True)["input_ids"]
               for i in range(0, len(set(MIXED)), 3)]
    assert padded < sum(len(b) * len(b[0]) for b in arrival)        # less padding than arrival order


def test_auto_batches_respect_the_token_budget(tiny_detoxify, monkeypatch):
    scorer = DetoxifyScorer(tiny_detoxify)                          # batch_size "auto" is the default
    assert scorer.batch_size == "auto"
    scorer._tokens = 40
    shapes = _record_batches(scorer, monkeypatch)
    scorer.score(MIXED)
    assert len(shapes) > 1 and all(n * w <= 40 or n == 1 for (n, w), _ in shapes)
    assert sum(n for (n, _), _ in shapes) == len(set(MIXED))


def test_auto_batches_back_off_on_cuda_out_of_memory(tiny_detoxify, monkeypatch):
    import torch

    scorer = DetoxifyScorer(tiny_detoxify)
    expected = scorer.score(MIXED)
    real_forward = scorer.model.forward
    rows_seen = []

    def forward(*args, **kwargs):
        rows_seen.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(scorer.model, "forward", forward)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    assert _close(scorer.score(MIXED), expected, 1e-5)
    assert max(rows_seen) > 2 and scorer._tokens < scoring.AUTO_TOKENS["cpu"]
    fixed = DetoxifyScorer(tiny_detoxify, batch_size=4)
    monkeypatch.setattr(fixed.model, "forward", forward)
    with pytest.raises(ScorerError, match="out of memory on a batch of 4 texts.*--score-batch-size auto"):
        fixed.score(MIXED)


@pytest.mark.parametrize("kwargs, match", [({"batch_size": 0}, "--score-batch-size 0"),
                                           ({"batch_size": "big"}, "--score-batch-size 'big'"),
                                           ({"precision": "int4"}, r"--scorer-precision int4.*did you mean")])
def test_bad_batch_size_or_precision_is_a_scorer_error(tiny_detoxify, kwargs, match):
    with pytest.raises(ScorerError, match=match):
        DetoxifyScorer(tiny_detoxify, **kwargs)
    with pytest.raises(ScorerError, match=match):
        load_scorer("detoxify", checkpoint=str(tiny_detoxify), **kwargs)


# ---- precision --------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_non_fp32_precision_changes_the_fingerprint_and_measures_agreement(tiny_detoxify, detox, precision):
    fast = DetoxifyScorer(tiny_detoxify, precision=precision)
    assert fast.precision == precision and fast.fingerprint == f"{detox.fingerprint}:{precision}"
    assert detox.fingerprint.endswith(":sha256:" + detox.fingerprint.rsplit(":", 1)[1])  # fp32 key unchanged
    a = fast.precision_agreement
    assert a["measured"] and a["texts"] == scoring.AGREEMENT_TEXTS and "fixtures/corpus/train.txt" in a["source"]
    assert 0 < a["max_abs_diff"] < 0.2 and a["flips_at_0.5"] <= a["texts"] * a["flip_fraction"] + 1e-9
    assert set(a) >= {"spearman", "flips_at_0.5", "flip_fraction"}
    rows = fast.score(TEXTS)
    assert _close(rows, detox.score(TEXTS), 0.2) and rows != detox.score(TEXTS)


def test_int8_on_a_gpu_is_refused_before_any_work(tmp_path):
    import torch

    with pytest.raises(ScorerError, match="int8 is dynamic quantisation for the CPU. Fix: use bf16 on a GPU"):
        scoring.converter("int8", torch.device("cuda"), tmp_path / "x.ckpt")
    assert callable(scoring.converter("int8", torch.device("cpu"), tmp_path / "x.ckpt"))


def test_agreement_counts_flips_and_rank_correlation():
    ref = [{"toxicity": v, "insult": 0.0} for v in (0.1, 0.4, 0.6, 0.9)]
    other = [{"toxicity": v, "insult": 0.05} for v in (0.1, 0.55, 0.45, 0.9)]
    a = scoring.precision_agreement(ref, other)
    assert a["flips_at_0.5"] == 2 and a["flip_fraction"] == 0.5 and a["max_abs_diff"] == pytest.approx(0.15)
    assert a["spearman"] == pytest.approx(0.8) and a["reference_positive_fraction"] == 0.5


def test_profanity_has_no_precision(tiny_detoxify):
    for choice in ("profanity", "hf:some/classifier", "perspective"):
        with pytest.raises(ScorerError, match=f"--scorer-precision int8 applies to Detoxify scorers; '{choice}'"):
            load_scorer(choice, precision="int8")
    assert "precision" not in scoring.resolve_scorer("profanity").info()


def test_handle_info_records_precision_and_agreement_only_once_measured(tiny_detoxify):
    handle = scoring.resolve_scorer("detoxify", checkpoint=str(tiny_detoxify), precision="int8")
    assert handle.fingerprint.endswith(":int8") and handle.info()["precision"] == "int8"
    assert handle.info()["precision_agreement"] == {
        "measured": False, "reason": "the scorer was not loaded in this run (every score came from the cache)"}
    handle.load()
    assert handle.info()["precision_agreement"]["measured"] is True
    plain = scoring.resolve_scorer("detoxify", checkpoint=str(tiny_detoxify))
    assert plain.info()["precision"] == "fp32" and "precision_agreement" not in plain.info()


def test_session_never_mixes_precisions_in_the_score_cache(tiny_detoxify, tmp_path):
    from harness.run.session import HarnessSession, RunOptions

    def run(precision):
        session = HarnessSession(RunOptions(model="unused", toxicity_scorer="detoxify", device="cpu",
                                            detoxify_checkpoint=str(tiny_detoxify), cache_dir=str(tmp_path),
                                            scorer_precision=precision, score_batch_size=2))
        rows = session.score(TEXTS)
        loaded = session.scorer_handle()._scorer is not None
        info = dict(session.scorer_info)
        session.close()
        return rows, loaded, info

    fp32, loaded, info = run("fp32")
    assert loaded and info["precision"] == "fp32" and "precision_agreement" not in info
    int8, loaded, info = run("int8")
    assert loaded and int8 != fp32                      # scored afresh, not read from the fp32 entries
    assert info["precision"] == "int8" and info["precision_agreement"]["measured"] is True
    again, loaded, info = run("int8")
    assert not loaded and again == int8                  # cached under the int8 fingerprint
    assert info["precision_agreement"]["measured"] is False


def test_plugin_validates_the_new_options(pytester):
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]\n')
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--scorer-precision", "int9", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*unknown scorer-precision 'int9'*did you mean 'int8'*"])
    result = pytester.runpytest("--score-batch-size", "0", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*'0' is not a positive integer*"])
    result = pytester.runpytest("--toxicity-scorer", "profanity", "--scorer-precision", "bf16",
                                "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--scorer-precision bf16 applies to Detoxify scorers*"])


# ---- overlap of scoring with generation (GPU scorers) ---------------------------------------------
def test_prefetcher_is_off_without_a_cuda_scorer():
    def load():
        raise AssertionError("the scorer must not load just to decide")

    assert scoring.prefetcher(load, "cpu") is None
    import torch

    if not torch.cuda.is_available():
        assert scoring.prefetcher(load, "auto") is None


def test_prefetched_rows_are_used_once_and_match_fresh_scores(tiny_detoxify, monkeypatch):
    scorer = DetoxifyScorer(tiny_detoxify)
    expected = DetoxifyScorer(tiny_detoxify).score(MIXED)
    pre = scoring.ScorePrefetcher(scorer)
    pre.submit(MIXED[:4])
    pre.submit(MIXED[4:])
    pre.wait()
    assert set(scorer.prefetched) == set(MIXED) and pre.busy_s > 0
    shapes = _record_batches(scorer, monkeypatch)
    assert _close(scorer.score(MIXED), expected, 1e-5)
    assert shapes == [] and scorer.prefetched == {}          # every row came from the prefetch, then dropped


def test_prefetch_errors_surface_in_wait(tiny_detoxify, monkeypatch):
    scorer = DetoxifyScorer(tiny_detoxify)
    monkeypatch.setattr(scorer, "score", lambda texts: (_ for _ in ()).throw(ScorerError("boom")))
    pre = scoring.ScorePrefetcher(scorer)
    pre.submit(["a"])
    with pytest.raises(ScorerError, match="boom"):
        pre.wait()


def test_session_overlap_gives_the_same_samples(tiny_model_dir, tiny_detoxify, tmp_path, monkeypatch):
    from harness.run.session import HarnessSession, RunOptions
    from harness.suites.specs import load_suite

    suite_file = tmp_path / "s.yaml"
    suite_file.write_text("suite: s\nkind: values\ndecoding: {samples: 3, max_new_tokens: 4}\ncategories:\n"
                          "  - id: a\n    prompts:\n      - {id: p1, text: hello world}\n"
                          "      - {id: p2, text: you are a stupid idiot}\n", encoding="utf-8")
    suite = load_suite(suite_file)

    def run(cache):
        session = HarnessSession(RunOptions(model=str(tiny_model_dir), toxicity_scorer="detoxify", device="cpu",
                                            detoxify_checkpoint=str(tiny_detoxify), cache_dir=str(tmp_path / cache),
                                            progress=False, batch_size=2))
        session.plan(suite, suite.prompts())
        samples = session.samples("candidate", suite.prompts())
        timings = dict(session.timings.phases)
        left = dict(session.scorer().prefetched)
        session.close()
        return samples, timings, left

    plain, timings, _ = run("plain")
    assert "scoring_overlapped" not in timings
    monkeypatch.setattr(scoring, "prefetcher", lambda load, device: scoring.ScorePrefetcher(load()))
    overlapped, timings, left = run("overlap")
    assert timings["scoring_overlapped"] > 0 and left == {}
    assert [s["text"] for s in overlapped] == [s["text"] for s in plain]
    assert _close([s["scores"] for s in overlapped], [s["scores"] for s in plain], 1e-5)


def test_detoxify_fingerprint_memo_follows_the_run_cache(tmp_path, monkeypatch):
    """--no-cache writes no fingerprint memo anywhere; --cache-dir DIR keeps it there (issue 12, item 18)."""
    from pathlib import Path

    from harness.measure import scoring

    ckpt = next((Path(__file__).resolve().parent.parent / "fixtures" / "detoxify-tiny").glob("*.ckpt"))
    default = tmp_path / "default"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(default))
    monkeypatch.setattr(scoring, "_MEMO_DIR", {})
    scoring.resolve_scorer("detoxify", str(ckpt), use_cache=False)
    assert not default.exists() or not any(default.rglob("*"))
    chosen = tmp_path / "chosen"
    scoring.resolve_scorer("detoxify", str(ckpt), cache_dir=str(chosen), use_cache=True)
    assert any(chosen.rglob("fingerprints.json")) and (not default.exists() or not any(default.rglob("*")))
