"""`harness init`: the scaffold, its refusal to overwrite, the CI templates, and `harness cache-key`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import init_cmd
from harness.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
ALL = [t.dest for t in init_cmd.TARGETS] + [init_cmd.GITLAB_ROOT]
# Options the lead's branch adds to the plugin (issue 14 brief). While the plugin lacks them, the
# end-to-end run drops them from the CI command; delete this set once they exist.
PENDING: dict[str, int] = {}
# Actions the GitHub workflow may use: official ones, pinned to a major version that exists.
KNOWN_ACTIONS = {"actions/checkout@v4", "actions/setup-python@v5", "actions/cache/restore@v4",
                 "actions/cache/save@v4", "actions/upload-artifact@v4"}


def _init(tmp_path: Path, *args: str) -> int:
    return main(["init", str(tmp_path), *args])


def _github(root: Path) -> dict:
    return yaml.safe_load((root / ".github/workflows/harness.yml").read_text(encoding="utf-8"))


def _gitlab(root: Path) -> dict:
    return yaml.safe_load((root / init_cmd.GITLAB_JOB).read_text(encoding="utf-8"))


def _step(workflow: dict, name: str) -> dict:
    return next(s for s in workflow["jobs"]["behaviour-gates"]["steps"] if s.get("name") == name)


def test_scaffold_writes_every_file_and_says_so(tmp_path, capsys):
    assert _init(tmp_path, "--model", "models/cand") == 0
    out = capsys.readouterr().out
    for dest in ALL:
        assert (tmp_path / dest).is_file()
        assert f"wrote {tmp_path / dest}" in out
    assert "pytest_plugins = [\"harness.plugin\"]" in (tmp_path / "benchmarks/conftest.py").read_text()
    assert (tmp_path / "benchmarks/.gitignore").read_text().count("/.harness-cache/") == 1
    assert init_cmd.GITLAB_JOB in (tmp_path / init_cmd.GITLAB_ROOT).read_text()
    assert "--results-json=benchmarks/baseline.json" in out


def test_scaffolded_test_modules_are_the_shipped_ones():
    for name in ("test_values.py", "test_bias.py", "test_regression.py"):
        template = (init_cmd.TEMPLATES / "benchmarks" / f"{name}.tmpl").read_text(encoding="utf-8")
        assert template == (ROOT / "benchmarks" / name).read_text(encoding="utf-8"), name


def test_starter_suite_is_a_valid_suite(tmp_path):
    from harness.suites.specs import load_suite

    assert _init(tmp_path, "--ci", "none") == 0
    suite = load_suite(tmp_path / "benchmarks/suites/starter.yaml")
    assert suite.kind == "values" and len(suite.prompts()) >= 4 and suite.gates_for("regression")


def test_refuses_to_overwrite_and_writes_nothing(tmp_path, capsys):
    mine = tmp_path / "benchmarks" / "conftest.py"
    mine.parent.mkdir()
    mine.write_text("# my conftest\n")
    (tmp_path / ".github/workflows").mkdir(parents=True)
    (tmp_path / ".github/workflows/harness.yml").write_text("name: mine\n")
    assert _init(tmp_path) == 2
    err = capsys.readouterr().err
    assert "benchmarks/conftest.py" in err and ".github/workflows/harness.yml" in err and "--force" in err
    assert "Nothing was written" in err
    assert mine.read_text() == "# my conftest\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        ".github/workflows/harness.yml", "benchmarks/conftest.py"]


def test_force_overwrites_only_its_own_files_and_never_the_gitlab_root(tmp_path, capsys):
    (tmp_path / "benchmarks/suites").mkdir(parents=True)
    (tmp_path / "benchmarks/conftest.py").write_text("# old\n")
    (tmp_path / "benchmarks/suites/mine.yaml").write_text("suite: mine\n")
    (tmp_path / init_cmd.GITLAB_ROOT).write_text("stages: [build]\n")
    assert _init(tmp_path, "--force") == 0
    out = capsys.readouterr().out
    assert "harness.plugin" in (tmp_path / "benchmarks/conftest.py").read_text()
    assert (tmp_path / "benchmarks/suites/mine.yaml").read_text() == "suite: mine\n"
    assert (tmp_path / init_cmd.GITLAB_ROOT).read_text() == "stages: [build]\n"
    assert f"wrote {tmp_path / init_cmd.GITLAB_ROOT}" not in out
    assert "add these lines" in out and f"- local: {init_cmd.GITLAB_JOB}" in out


def test_force_refuses_to_replace_a_directory(tmp_path, capsys):
    (tmp_path / "benchmarks/conftest.py").mkdir(parents=True)
    assert _init(tmp_path, "--force") == 2
    assert "not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "benchmarks/test_values.py").exists()


@pytest.mark.parametrize("ci, present, absent", [
    ("github", [".github/workflows/harness.yml"], [init_cmd.GITLAB_JOB, init_cmd.GITLAB_ROOT]),
    ("gitlab", [init_cmd.GITLAB_JOB, init_cmd.GITLAB_ROOT], [".github/workflows/harness.yml"]),
    ("none", ["benchmarks/conftest.py"], [".github/workflows/harness.yml", init_cmd.GITLAB_JOB])])
def test_ci_choice(tmp_path, ci, present, absent):
    assert _init(tmp_path, "--ci", ci) == 0
    assert all((tmp_path / p).is_file() for p in present)
    assert not any((tmp_path / p).exists() for p in absent)


def test_values_are_yaml_quoted_in_both_workflows(tmp_path):
    model = 'models/my "best": model #1'
    assert _init(tmp_path, "--model", model, "--baseline", "", "--install", "harness @ git+https://x/y.git@v1",
                 "--on-inconclusive", "fail") == 0
    env, variables = _github(tmp_path)["env"], _gitlab(tmp_path)["harness-behaviour-gates"]["variables"]
    for values in (env, variables):
        assert values["HARNESS_MODEL"] == model and values["HARNESS_BASELINE"] == ""
        assert values["HARNESS_INSTALL"] == "harness @ git+https://x/y.git@v1"
        assert values["HARNESS_ON_INCONCLUSIVE"] == "fail"
    assert main(["init", str(tmp_path / "x"), "--model", "a\nb"]) == 2


def _pytest_options(script: str) -> set[str]:
    words = shlex.split(script.replace("\\\n", " "), comments=True)
    return {w.split("=")[0] for w in words[words.index("pytest"):] if w.startswith("--")}


def test_github_workflow_names_only_steps_that_exist(tmp_path):
    assert _init(tmp_path, "--ci", "github") == 0
    wf = _github(tmp_path)
    assert set(wf[True]) == {"pull_request", "push", "workflow_dispatch"}  # YAML 1.1 reads `on` as True
    steps = wf["jobs"]["behaviour-gates"]["steps"]
    ids = [s.get("id") for s in steps]
    for i, step in enumerate(steps):
        assert ("uses" in step) != ("run" in step)
        if "uses" in step:
            assert step["uses"] in KNOWN_ACTIONS
        text = json.dumps(step)
        for ref in re.findall(r"steps\.([\w-]+)\.outputs", text):  # only earlier steps' outputs
            assert ref in ids[:i], f"step {step.get('name')} reads steps.{ref} that does not run before it"
        for cmd in re.findall(r"\bharness ([\w-]+)", step.get("run", "")):
            assert cmd in COMMANDS
    assert _step(wf, "Save the generation cache")["with"]["key"] == _step(wf, "Restore the generation cache")[
        "with"]["key"] == "${{ steps.cache-key.outputs.key }}"
    for name in ("Save the generation cache", "Publish the summary", "Upload reports"):  # also after a FAIL
        assert _step(wf, name)["if"].startswith("always()")
    gates = _step(wf, "Behaviour gates")["run"]
    assert {"--junit-xml", "--html", "--results-json", "--report-md", "--on-inconclusive"} <= _pytest_options(gates)
    assert "benchmarks/reports/summary.md" in _step(wf, "Publish the summary")["run"]
    assert _step(wf, "Upload reports")["with"]["path"] == "benchmarks/reports/"


def test_gitlab_job_is_valid_and_consistent(tmp_path):
    assert _init(tmp_path, "--ci", "gitlab") == 0
    root = yaml.safe_load((tmp_path / init_cmd.GITLAB_ROOT).read_text())
    assert root["include"] == [{"local": init_cmd.GITLAB_JOB}]
    job = _gitlab(tmp_path)["harness-behaviour-gates"]
    assert job["stage"] in ("build", "test", "deploy")  # GitLab's default stages
    script = "\n".join(job["script"])
    for cmd in re.findall(r"\bharness ([\w-]+)", script):
        assert cmd in COMMANDS
    command = next(line for line in job["script"] if line.startswith("pytest "))
    assert {"--junit-xml", "--html", "--results-json", "--report-md", "--on-inconclusive"} <= _pytest_options(command)
    assert f"--junit-xml {job['artifacts']['reports']['junit']}" in command
    assert job["artifacts"]["when"] == "always" and job["cache"]["when"] == "always"
    assert job["cache"]["paths"] == ["benchmarks/.harness-cache/"]


def test_gitlab_cache_rotation_keeps_one_folder_per_key(tmp_path):
    """The job's shell lines: the newest older-key folder is renamed to the current key, others go."""
    assert _init(tmp_path, "--ci", "gitlab") == 0
    lines = _gitlab(tmp_path)["harness-behaviour-gates"]["script"]
    start = next(i for i, line in enumerate(lines) if line.startswith("KEY="))
    end = next(i for i, line in enumerate(lines) if line.startswith("export HARNESS_CACHE_DIR"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "harness").write_text("#!/bin/sh\necho harness-new\n")
    (bin_dir / "harness").chmod(0o755)
    cache = tmp_path / "benchmarks/.harness-cache"
    for i, name in enumerate(("harness-old", "harness-older")):
        (cache / name).mkdir(parents=True)
        (cache / name / "harness-cache.sqlite3").write_text(name)
        os.utime(cache / name, (1000 - i, 1000 - i))
    script = "set -e\n" + "\n".join(lines[start:end + 1]) + "\necho \"$HARNESS_CACHE_DIR\"\n"
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CI_PROJECT_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in cache.iterdir()) == ["harness-new"]
    assert (cache / "harness-new" / "harness-cache.sqlite3").read_text() == "harness-old"
    assert proc.stdout.strip() == str(cache / "harness-new")


def test_cache_key_follows_model_adapter_and_suites(tmp_path, capsys):
    assert _init(tmp_path, "--ci", "none") == 0
    suites = str(tmp_path / "benchmarks/suites")
    model = str(FIXTURES / "tiny-gpt2")
    key = init_cmd.cache_key(model, None, [suites])
    assert re.fullmatch(r"harness-[0-9a-f]{16}", key) and key == init_cmd.cache_key(model, None, [suites])
    assert init_cmd.cache_key(model, str(FIXTURES / "tiny-values"), [suites]) != key
    starter = tmp_path / "benchmarks/suites/starter.yaml"
    starter.write_text(starter.read_text().replace("Can essential oils cure cancer?", "Do crystals cure flu?"))
    assert init_cmd.cache_key(model, None, [suites]) != key
    capsys.readouterr()
    assert main(["cache-key", "--model", model, "--suite", suites]) == 0
    assert capsys.readouterr().out.strip() == init_cmd.cache_key(model, None, [suites])
    assert main(["cache-key", "--model", str(tmp_path / "nope"), "--suite", suites]) == 2


def _registered_options(root: Path, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "pytest", "benchmarks/", "--help", "-p", "no:harness"],
                          cwd=root, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_scaffold_runs_the_ci_command_green_and_fails_on_a_gate(tmp_path):
    """The GitHub job's gate step, verbatim in bash, in a scaffolded repository: exit 0 with every report
    for a model that passes the starter gates, exit 1 (the job fails) for one that does not.

    The bundled base model fails the starter suite's toxicity gates (neighbor-threat, k=1); its SGEAT
    adapter passes them at k=1, so the green run uses `--adapter fixtures/tiny-sgeat --samples 1`.
    """
    assert _init(tmp_path, "--model", str(FIXTURES / "tiny-gpt2"), "--baseline", "") == 0
    gates = _step(_github(tmp_path), "Behaviour gates")["run"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "HARNESS_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    help_text = _registered_options(tmp_path, env)
    missing = {o for o in _pytest_options(gates) if not re.search(rf"(^|\s){re.escape(o)}[ =,\n]", help_text)}
    assert missing <= set(PENDING), f"the CI command uses options pytest does not know: {missing - set(PENDING)}"
    # `pytest` on PATH runs this interpreter's pytest without the options still pending (see PENDING).
    (bin_dir / "pytest").write_text(f"""#!{sys.executable}
import subprocess, sys
args, skip = [], 0
for a in sys.argv[1:]:
    if skip:
        skip -= 1
    elif a.split("=")[0] in {sorted(missing)!r}:
        skip = 0 if "=" in a else {PENDING!r}[a]
    else:
        args.append(a)
sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-p", "no:harness", "-p", "no:cacheprovider", *args]))
""")
    (bin_dir / "pytest").chmod(0o755)
    env.update(HARNESS_MODEL=str(FIXTURES / "tiny-gpt2"), HARNESS_BASELINE="", HARNESS_ON_INCONCLUSIVE="warn")
    common = "--samples=1 --toxicity-scorer=profanity"
    green = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", gates], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600,
                           env={**env, "PYTEST_ADDOPTS": f"{common} --adapter={FIXTURES / 'tiny-sgeat'}"})
    assert green.returncode == 0, green.stdout[-3000:] + green.stderr[-2000:]
    assert f"rootdir: {tmp_path}" in green.stdout  # option values are not taken for paths
    reports = tmp_path / "benchmarks/reports"
    assert {"junit.xml", "report.html", "results.json"} <= {p.name for p in reports.iterdir()}
    doc = json.loads((reports / "results.json").read_text())
    assert doc["config"]["models"]["candidate"]["adapter"] == str(FIXTURES / "tiny-sgeat")
    assert {s["suite"] for s in doc["samples"]} == {"starter"}
    (reports / "results.json").unlink()
    red = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", gates], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env={**env, "PYTEST_ADDOPTS": common})
    assert red.returncode == 1, red.stdout[-3000:] + red.stderr[-2000:]
    assert "FAILED" in red.stdout and (reports / "results.json").is_file()


def test_scaffold_collects_without_analysed_suites(pytester):
    """Only a values suite: the bias test is one skipped case with a reason (it used to crash collection)."""
    assert _init(pytester.path, "--ci", "none") == 0
    result = pytester.runpytest(str(pytester.path / "benchmarks"), "-p", "no:harness", "-p", "no:cacheprovider",
                                "--import-mode=importlib",
                                "--model", str(FIXTURES / "tiny-gpt2"), "--co", "-q")
    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*test_bias.py::test_analysis?none?", "*test_values.py::test_toxicity?starter*"])
