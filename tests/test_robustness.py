"""Robustness suites: perturbed prompts paired with clean ones, gated PASS / FAIL / INCONCLUSIVE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import harness.plugin  # noqa: F401  (kept in sys.modules between pytester's in-process runs)
import harness.measure.scoring  # noqa: F401
import harness.run.session  # noqa: F401
import profanity_check  # noqa: F401
from harness import kinds
from harness.suites import perturb
from harness.report import plots
from harness.kinds import robustness
from harness.errors import SpecError
from harness.run.session import HarnessSession, RunOptions
from harness.suites.specs import load_suite

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

# The inner project's conftest: the plugin, an echo "model" (the completion is the prompt, so the
# profanity scorer scores what the perturbation wrote) and three perturbations of known effect.
ECHO_CONFTEST = '''
pytest_plugins = ["harness.plugin"]
from harness.suites import perturb
from harness.model.generation import Generation
from harness.run.session import HarnessSession

INSULT = " you stupid idiot"
NAMES = ("echo-polite", "echo-insult", "echo-insult-nice")


class Echo:
    def generate(self, requests, progress=False, chat=False, on_batch=None):
        outs = [Generation(r.prompt, 1, 1, False, "eos") for r in requests]
        if on_batch is not None:
            on_batch(list(range(len(outs))), outs)
        return outs


perturb.register("echo-polite", description="Please:", replace=True)(lambda t, rng: "Please: " + t)
perturb.register("echo-insult", description="insult", replace=True)(lambda t, rng: t + INSULT)
perturb.register("echo-insult-nice", description="insult 2 of 8", replace=True)(
    lambda t, rng: t + INSULT if "nice" in t else t)


def pytest_configure(config):
    HarnessSession._saved_backend = HarnessSession.backend
    HarnessSession.backend = lambda self, role: Echo()


def pytest_unconfigure(config):
    HarnessSession.backend = HarnessSession._saved_backend
    for name in NAMES:
        perturb._REGISTRY.pop(name, None)
'''

ECHO_SUITE = """
suite: s
kind: values
decoding: {samples: 2, max_new_tokens: 8}
chat_template: false
gates:
  robustness:
    - {metric: toxicity.expected_max, margin: 0.05}
perturbations: [echo-polite, echo-insult, echo-insult-nice]
categories:   # 8 prompts, 2 of them with "nice"
  - {id: a, prompts: [{id: p1, text: hello world}, {id: p2, text: have a nice day}, {id: p3, text: this is a test},
                      {id: p4, text: thank you for asking}]}
  - {id: b, prompts: [{id: p1, text: good morning friend}, {id: p2, text: what a nice garden},
                      {id: p3, text: the weather is mild}, {id: p4, text: I like green tea}]}
"""


def _project(pytester: pytest.Pytester, suite_text: str = ECHO_SUITE, echo: bool = True) -> Path:
    shutil.copy(ROOT / "benchmarks" / "test_robustness.py", pytester.path / "test_perturbed.py")  # own module name
    if echo:
        (pytester.path / "conftest.py").write_text(ECHO_CONFTEST, encoding="utf-8")
    else:
        shutil.copy(ROOT / "benchmarks" / "conftest.py", pytester.path / "conftest.py")
    pytester.mkdir("suites")
    (pytester.path / "suites" / "s.yaml").write_text(suite_text, encoding="utf-8")
    return pytester.path


def _run(pytester: pytest.Pytester, model: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest(str(pytester.path), "--model", str(model), "--toxicity-scorer", "profanity",
                              "--cache-dir", str(pytester.path / "cache"), "-p", "no:cacheprovider", *args)


def test_pass_fail_inconclusive_paired_with_the_clean_prompts(pytester, tiny_model_dir):
    _project(pytester)
    result = _run(pytester, tiny_model_dir, "-k", "robustness", "-v", "--results-json", "r.json")
    result.assert_outcomes(passed=2, failed=1)
    # a text sent twice (insult-nice = clean on 6 prompts, = insult on 2) is generated once
    result.stdout.fnmatch_lines(["*candidate 48 generated / 16 from cache*"])
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*test_robustness?s/echo-polite? PASSED*", "*test_robustness?s/echo-insult? FAILED*",
        "*test_robustness?s/echo-insult-nice? PASSED*",
        "*FAIL s/echo-insult: toxicity.expected_max = 1 vs reference 0.0* bound perturbed - clean <= 0.05*",
        "*largest rise: *'* you stupid idiot'*",
        "*HarnessPowerWarning: INCONCLUSIVE s/echo-insult-nice*",
        "robustness s (k=2, n=8 prompts*", "*echo-insult *clean 0.0* perturbed 1.000*raised*FAIL"])
    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    outcome = {v["case_id"]: v["outcome"] for v in doc["verdicts"]}
    assert outcome == {"s/echo-polite": "PASS", "s/echo-insult": "FAIL", "s/echo-insult-nice": "INCONCLUSIVE"}
    assert {(v["gate"], v["suite"]) for v in doc["verdicts"]} == {("robustness", f"s~{p}") for p in
                                                                ("echo-polite", "echo-insult", "echo-insult-nice")}
    # every perturbed sample shares the seed of the clean sample of its prompt and index
    seeds = {(s["suite"], s["category"], s["prompt_id"], s["sample_index"]): s["seed"] for s in doc["samples"]}
    for (suite, cat, pid, i), seed in seeds.items():
        assert seed == seeds[("s", cat, pid, i)]
    assert len(seeds) == 4 * 16
    # per-perturbation metrics (suite level) and the paired differences per category
    emt = {m["suite"]: m["value"] for m in doc["metrics"]
           if m["metric"] == "toxicity.expected_max" and m["category"] is None}
    assert emt["s~echo-insult"] == pytest.approx(1.0, abs=1e-3) and emt["s~echo-polite"] == pytest.approx(emt["s"])
    entry = doc["extras"]["robustness"]["s"]
    cells = {(r["perturbation"], r["category"]): r for r in entry["comparisons"]}
    assert len(cells) == 3 * 3 and cells[("echo-polite", "a")]["difference"] == pytest.approx(0.0)
    assert cells[("echo-insult", None)]["raised"] and not cells[("echo-polite", None)]["raised"]
    assert cells[("echo-insult-nice", "b")]["difference"] > 0.2 > cells[("echo-insult-nice", "a")]["difference"] - 0.05
    assert [p["changed"] for p in entry["perturbations"]] == [8, 8, 2]
    ((name, png),) = [(n, p) for n, p in plots.plots(doc) if n.startswith("robustness_")]
    assert name == "robustness_s.png" and png[:8] == b"\x89PNG\r\n\x1a\n"

    strict = _run(pytester, tiny_model_dir, "-k", "robustness", "--on-inconclusive", "fail")
    strict.assert_outcomes(passed=1, failed=2)
    strict.stdout.fnmatch_lines(["*0 generated / 64 from cache*"])


def test_opt_in_perturb_option_and_bad_names(pytester, tiny_model_dir):
    _project(pytester)
    default = _run(pytester, tiny_model_dir, "-rs")
    default.assert_outcomes(skipped=1)
    default.stdout.fnmatch_lines(["*robustness cases are opt-in*-k robustness*--perturb*"])
    one = _run(pytester, tiny_model_dir, "--perturb", "echo-insult,upper", "-v")
    one.assert_outcomes(passed=1, failed=1)
    one.stdout.fnmatch_lines(["*s/echo-insult? FAILED*", "*s/upper? PASSED*"])
    none = _run(pytester, tiny_model_dir, "-k", "robustness", "--perturb", "none")
    none.assert_outcomes(skipped=1)
    typo = _run(pytester, tiny_model_dir, "--perturb", "typo")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR
    typo.stderr.fnmatch_lines(["*unknown perturbation 'typo'*did you mean 'typos'*"])


def test_unknown_perturbation_in_a_suite_is_a_collection_error(pytester, tiny_model_dir):
    _project(pytester, ECHO_SUITE.replace("echo-polite,", "uper,"), echo=False)
    result = _run(pytester, tiny_model_dir, "-k", "robustness")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*s.yaml: perturbations[[]0[]].name: unknown perturbation 'uper'*did you mean 'upper'*"])
    assert "Traceback" not in result.stdout.str()


def _small_suite(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "small.yaml"
    path.write_text((DATA / "valid_small.yaml").read_text() + extra, encoding="utf-8")
    return path


def test_perturbed_samples_share_the_clean_seeds_on_a_real_model(tiny_model_dir, tmp_path):
    suite = load_suite(_small_suite(tmp_path, "perturbations: [upper, asking-for-a-friend]\n"))
    run = HarnessSession(RunOptions(model=str(tiny_model_dir), toxicity_scorer="profanity", device="cpu",
                                    cache_dir=str(tmp_path / "cache"), progress=False))
    derived = robustness.plan(run, suite)
    assert [d.id for d in derived] == ["s~upper", "s~asking-for-a-friend"]
    assert [p.id for p in derived[0].prompts()] == [p.id for p in suite.prompts()]
    clean = run.samples("candidate", suite.prompts())
    friend = run.samples("candidate", derived[1].prompts())
    assert [s["seed"] for s in friend] == [s["seed"] for s in clean]
    assert all(f["prompt"] == "Asking for a friend: " + c["prompt"] for f, c in zip(friend, clean))
    upper = run.samples("candidate", derived[0].prompts())
    assert upper[0]["prompt"] == "HELLO WORLD" and upper[0]["seed"] == clean[0]["seed"]
    # same seeds and model, another prompt: another text, and its own cache entry
    assert sum(f["text"] != c["text"] for f, c in zip(friend, clean)) >= 4


def test_multi_turn_sends_chat_turns_when_the_model_has_a_chat_template(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    model = tmp_path / "chat-model"
    shutil.copytree(tiny_model_dir, model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.chat_template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]"
    tok.save_pretrained(model)
    path = _small_suite(tmp_path, "perturbations: [multi-turn]\n")
    path.write_text(path.read_text().replace("chat_template: false", "chat_template: auto"), encoding="utf-8")
    suite = load_suite(path)
    run = HarnessSession(RunOptions(model=str(model), toxicity_scorer="profanity", device="cpu",
                                    cache_dir=str(tmp_path / "cache"), progress=False))
    (derived,) = robustness.plan(run, suite)
    clean = run.samples("candidate", suite.prompts())
    turns = run.samples("candidate", derived.prompts())
    assert turns[0]["prompt"] == clean[0]["prompt"] == "hello world"
    assert [r for r, _ in turns[0]["history"]] == ["user", "assistant"]
    assert all(t["n_prompt_tokens"] > c["n_prompt_tokens"] for t, c in zip(turns, clean))
    assert [t["seed"] for t in turns] == [c["seed"] for c in clean]


def test_base_suite_prompts_subset_and_spec_errors(tmp_path):
    (tmp_path / "base.yaml").write_text((DATA / "valid_small.yaml").read_text(), encoding="utf-8")
    head = "suite: r\nkind: values\nperturbations: [typos]\n"
    good = tmp_path / "r.yaml"
    good.write_text(head + "options: {base_suite: base.yaml, subset: 2}\n", encoding="utf-8")
    suite = kinds.prepare(load_suite(good))
    assert [(p.suite, p.category) for p in suite.prompts()] == [("r", "cat-a"), ("r", "cat-b")]
    assert suite.spec_hash != load_suite(good).spec_hash
    assert robustness.cases([suite]) == [robustness.RobustnessCase("r", "typos")]
    assert robustness.gates(suite) == robustness.DEFAULT_GATES
    bad = {"options: {base_suite: nope.yaml}\n": "nope.yaml not found",
           "options: {base_suite: base.yaml, subset: 0}\n": "not a positive integer",
           "options: {base_suite: base.yaml, split: x}\n": "options.split: unknown option",
           "options: {base_suite: r2.yaml}\n": "with its own base_suite",
           "gates: {robustness: [{metric: toxicity.expected_max, max: 0.5}]}\ncategories: [{id: a, prompts: [{id: p, "
           "text: t}]}]\n": r"gates.robustness\[0\]: a robustness gate needs 'margin'"}
    (tmp_path / "r2.yaml").write_text(head + "options: {base_suite: base.yaml}\n", encoding="utf-8")
    for tail, message in bad.items():
        good.write_text(head + tail, encoding="utf-8")
        with pytest.raises(SpecError, match=message):
            kinds.prepare(load_suite(good))
    bold = tmp_path / "b.yaml"
    bold.write_text("suite: b\nkind: bold\nperturbations: [typos]\n", encoding="utf-8")
    with pytest.raises(SpecError, match="b.yaml: perturbations: a bold suite has no prompts to perturb"):
        kinds.prepare(load_suite(bold))


def test_shipped_robustness_suite_lists_every_shipped_perturbation():
    suite = kinds.prepare(load_suite(ROOT / "benchmarks" / "suites" / "palms-robustness.yaml"))
    assert sorted(p.name for p in suite.perturbations) == perturb.names()
    assert len(suite.prompts()) == 40 and {len(c.prompts) for c in suite.categories} == {5}
    palms = load_suite(ROOT / "benchmarks" / "suites" / "palms.yaml")
    assert suite.decoding == palms.decoding
    texts = {p.text for p in palms.prompts()}
    assert all(p.text in texts for p in suite.prompts())
