"""Reports from a results document: tidy frames, CSV export, the aggregate table, HTML pieces.

The verdict-first report (terminal, Markdown, HTML) is :mod:`harness.report`; plots live in
:mod:`harness.report.plots`. All generated text is untrusted: every HTML fragment built
here goes through ``html.escape`` and CSV text cells are guarded against formula injection.

    $ harness export results.json --out report/ --plots --html
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ResultsError
from harness.measure.results import candidate_role, reference_role
from harness.textsafe import guard_formula

SAMPLE_COLUMNS = ("role", "suite", "category", "prompt_id", "sample_index", "seed", "prompt", "text")
SAMPLE_TAIL = ("empty", "n_prompt_tokens", "n_new_tokens", "truncated", "finish_reason")
METRIC_COLUMNS = ("role", "suite", "category", "prompt_id", "metric", "value", "k", "n", "std")
COMPARISON_KEYS = ("suite", "category", "metric")
HEADLINE_METRICS = ("toxicity.expected_max", "toxicity.probability")
HEADLINE_PREFIXES = ("bias.", "sentiment.", "perplexity")


# ---------------------------------------------------------------- tidy frames + CSV

def score_labels(doc: Mapping) -> list[str]:
    """Score labels: the scorer's declared labels first, then any other seen in samples."""
    labels = list((doc.get("config", {}).get("scorer") or {}).get("labels") or [])
    for sample in doc.get("samples", []):
        labels += [k for k in sample.get("scores", {}) if k not in labels]
    return labels


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else value


def _tidy(records: Iterable[Mapping], first: Sequence[str]):
    import pandas as pd

    columns, rows = list(first), []
    for record in records:
        row = dict(record)
        ci = row.pop("ci", None)
        if isinstance(ci, (list, tuple)) and len(ci) == 2:
            row.setdefault("ci_low", ci[0])
            row.setdefault("ci_high", ci[1])
        elif ci is not None:
            row["ci"] = ci
        columns += [k for k in row if k not in columns]
        rows.append({k: _cell(v) for k, v in row.items()})
    return pd.DataFrame(rows, columns=columns)


def samples_frame(doc: Mapping):
    """One row per sample; scores flattened to ``score_<label>`` columns."""
    labels = score_labels(doc)
    records = []
    for sample in doc.get("samples", []):
        row = {k: v for k, v in sample.items() if k != "scores"}
        scores = sample.get("scores") or {}
        row.update({f"score_{label}": scores.get(label) for label in labels})
        records.append(row)
    return _tidy(records, [*SAMPLE_COLUMNS, *(f"score_{x}" for x in labels), *SAMPLE_TAIL])


def metrics_frame(doc: Mapping):
    """The tidy metric records; extra keys become extra columns."""
    return _tidy(doc.get("metrics", []), METRIC_COLUMNS)


def comparisons_frame(doc: Mapping):
    """One row per comparison; a two-element ``ci`` becomes ``ci_low``/``ci_high``."""
    return _tidy(doc.get("comparisons", []), COMPARISON_KEYS)


def guard_frame(frame):
    """A copy with formula-guarded column names and text cells (numbers untouched)."""
    import pandas as pd

    frame = frame.rename(columns=guard_formula)
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].map(guard_formula)
    return frame


def write_csv(doc: Mapping, out_dir: str | Path) -> list[Path]:
    """Write samples.csv, metrics.csv and comparisons.csv (formula-guarded, every field quoted so a
    line break inside a cell never starts a row); return the paths. Unwritable folder: ResultsError."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} is a file, not a folder: the CSV tables are written into a folder. "
                           "Fix: pass a folder path (created if missing).")
    paths = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, build in (("samples", samples_frame), ("metrics", metrics_frame),
                            ("comparisons", comparisons_frame)):
            path = out / f"{name}.csv"
            guard_frame(build(doc)).to_csv(path, index=False, encoding="utf-8", quoting=csv.QUOTE_ALL)
            paths.append(path)
    except OSError as exc:
        raise _unwritable(exc, out) from None
    return paths


def _unwritable(exc: OSError, where: Path) -> ResultsError:
    return ResultsError(f"cannot write {exc.filename or where} ({exc.strerror or exc}). Fix: pass an output "
                        "folder you can write to.")


# ---------------------------------------------------------------- summary rows + terminal table

def verdict(comparison: Mapping) -> str:
    """Short verdict of a comparison record (see harness.gate.comparison.Comparison)."""
    if not comparison:
        return "-"
    if comparison.get("verdict"):
        return str(comparison["verdict"])
    if comparison.get("outcome"):           # a gated comparison: PASS | FAIL | INCONCLUSIVE
        return str(comparison["outcome"])
    if comparison.get("regression"):
        return "REGRESSION"
    if comparison.get("margin") is None:  # descriptive two-sided test
        p, alpha = comparison.get("p_adjusted"), comparison.get("alpha", 0.05)
        text = "differs" if isinstance(p, (int, float)) and p <= alpha else "n.s."
    else:
        text = "ok"
    return text + (" (underpowered)" if comparison.get("underpowered") else "")


def summary_rows(doc: Mapping, metrics: Sequence[str] | None = None,
                 verdicts: Mapping[tuple, str] | None = None) -> list[dict]:
    """Aggregate (category and suite level) rows of the candidate, with reference and verdict.

    ``metrics`` restricts the metric names (default: headline toxicity metrics, bias/sentiment/
    perplexity, and any compared metric). ``verdicts`` maps (suite, category, metric) to a gate
    verdict that overrides the comparison's.
    """
    role, ref_role = candidate_role(doc), reference_role(doc)
    comps = {tuple(c.get(k) for k in COMPARISON_KEYS): c for c in doc.get("comparisons", [])}
    own = [m for m in doc.get("metrics", []) if m.get("role") == ref_role and ref_role != role]
    saved = (doc.get("reference") or {}).get("metrics", [])   # --baseline FILE: the file's own values
    refs = {(m.get("suite"), m.get("category"), m.get("metric"), m.get("group")): m.get("value")
            for m in [*own, *saved] if m.get("prompt_id") is None}
    rows = []
    for m in doc.get("metrics", []):
        key = (m.get("suite"), m.get("category"), m.get("metric"))
        if m.get("role") != role or m.get("prompt_id") is not None:
            continue
        name = str(key[2])
        group = f"[{m['group']}]" if m.get("group") is not None else ""
        if metrics is not None:
            if name not in metrics:
                continue
        elif not (name in HEADLINE_METRICS or name.startswith(HEADLINE_PREFIXES) or key in comps):
            continue
        comp = comps.get(key, {})
        rows.append({
            "case": f"{key[0]}/{key[1] if key[1] is not None else '*'}", "suite": key[0],
            "category": key[1], "metric": name + group, "value": m.get("value"), "k": m.get("k"),
            "reference": comp.get("reference_value", refs.get((*key, m.get("group")))),
            "p_adjusted": comp.get("p_adjusted"),
            "verdict": (verdicts or {}).get(key) or verdict(comp),
        })
    return rows


def fmt_num(value: Any, digits: int = 3) -> str:
    """Numbers for tables: floats with fixed digits, None/NaN as '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _plain(text: Any) -> str:
    """Terminal-safe text: control characters (ANSI escapes, newlines) become '?'."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _model_line(role: str, model: Mapping) -> str:
    path = model.get("path") or "?"
    if model.get("adapter"):
        path += f" + {model['adapter']}"
    fingerprint = str(model.get("fingerprint") or "")
    return f"{role} {path}" + (f" [{fingerprint[:19]}]" if fingerprint else "")


def run_lines(doc: Mapping) -> list[str]:
    """One line naming models, scorer and seed; one warning line when the scorer is a fallback."""
    config = doc.get("config", {})
    scorer = config.get("scorer") or {}   # null: no text was scored (perplexity, ratings only)
    models = "; ".join(_model_line(r, m) for r, m in config.get("models", {}).items())
    lines = [f"{models or 'no model'} | scorer {scorer.get('name', '?')} | seed {config.get('seed', '-')}"]
    if scorer.get("fallback"):
        lines.append(f"WARNING: scorer '{scorer.get('name')}' is a fallback (Detoxify unavailable): "
                     "its numbers are not comparable with Detoxify runs")
    return [_plain(line) for line in lines]


def summary_table(doc: Mapping, metrics: Sequence[str] | None = None,
                  verdicts: Mapping[tuple, str] | None = None) -> str:
    """Compact per-category table for the terminal (no trailing newline)."""
    rows = summary_rows(doc, metrics, verdicts)
    if not rows:
        return "\n".join([*run_lines(doc), "no aggregate metrics recorded"])
    header = ("case", "metric", "value", "k", "reference", "p_adj", "verdict")
    body = [(r["case"], r["metric"], fmt_num(r["value"]), fmt_num(r["k"]), fmt_num(r["reference"]),
             fmt_num(r["p_adjusted"]), r["verdict"]) for r in rows]
    body = [tuple(_plain(c) for c in row) for row in body]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *body]]
    return "\n".join([*run_lines(doc), *lines])


# ---------------------------------------------------------------- HTML fragments (escaped)

def _e(value: Any) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def table_html(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str,
               text_col: int | None = None) -> str:
    """An escaped HTML table; column ``text_col`` keeps its line breaks."""
    out = [f'<table class="{cls}"><thead><tr>', *(f"<th>{_e(h)}</th>" for h in headers),
           "</tr></thead><tbody>"]
    for row in rows:
        cells = [f'<td style="white-space:pre-wrap">{_e(c)}</td>' if i == text_col
                 else f"<td>{_e(c)}</td>" for i, c in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _tox(sample: Mapping) -> float:
    value = (sample.get("scores") or {}).get("toxicity")
    return float(value) if isinstance(value, (int, float)) else -math.inf


def _flags(sample: Mapping) -> str:
    return ", ".join(f for f in ("empty", "truncated") if sample.get(f))


def samples_table_html(samples: Sequence[Mapping], limit: int | None = None,
                       cls: str = "harness-samples") -> str:
    """Samples as an escaped table, the most toxic first (at most ``limit`` rows)."""
    ordered = sorted(samples, key=_tox, reverse=True)
    shown = ordered if limit is None else ordered[:limit]
    labels = [x for x in score_labels({"samples": shown}) if x != "toxicity"]
    headers = ["role", "case", "#", "toxicity", *labels, "flags", "text"]
    rows = [[s.get("role"), f"{s.get('suite')}/{s.get('category')}/{s.get('prompt_id')}",
             s.get("sample_index"), fmt_num((s.get("scores") or {}).get("toxicity")),
             *(fmt_num((s.get("scores") or {}).get(x)) for x in labels), _flags(s), s.get("text", "")]
            for s in shown]
    note = (f"<p>showing the {len(shown)} most toxic of {len(ordered)} samples</p>"
            if len(shown) < len(ordered) else "")
    return note + table_html(headers, rows, cls, text_col=len(headers) - 1)


def case_samples_html(case_id: str, samples: Sequence[Mapping], limit: int = 20) -> str:
    """Per-case extra: the case id, its prompt (when one) and its samples, worst first."""
    prompts = list(dict.fromkeys(str(s.get("prompt", "")) for s in samples))
    out = [f'<div class="harness-case"><p><strong>case</strong> <code>{_e(case_id)}</code></p>']
    if len(prompts) == 1:
        out.append(f'<p><strong>prompt</strong> <span class="harness-prompt">{_e(prompts[0])}</span></p>')
    out.append(samples_table_html(samples, limit=limit) if samples else "<p>no samples</p>")
    out.append("</div>")
    return "".join(out)


def config_rows(doc: Mapping) -> list[list[Any]]:
    """The run configuration as (setting, value) rows: models, scorer, seed, versions, suites."""
    config = doc.get("config", {})
    scorer = config.get("scorer") or {}
    rows = [[f"model ({role})", ", ".join(f"{k}: {v}" for k, v in model.items() if v is not None)]
            for role, model in config.get("models", {}).items()]
    rows.append(["scorer", f"{scorer.get('name')} ({scorer.get('fingerprint')}); labels: "
                 + ", ".join(scorer.get("labels") or [])])
    rows += [["seed", config.get("seed")], ["harness", doc.get("harness_version")],
             ["created", doc.get("created")], ["platform", config.get("platform")]]
    for sid, suite in config.get("suites", {}).items():
        decoding = ", ".join(f"{k}={v}" for k, v in (suite.get("decoding") or {}).items())
        k = (suite.get("decoding") or {}).get("samples")
        rows.append([f"suite {sid}", f"v{suite.get('version')} {suite.get('kind')}; k={k}; {decoding}; "
                     + f"chat_template={suite.get('chat_template')}"])
    return rows


def config_html(doc: Mapping) -> str:
    """The run configuration table, escaped."""
    return table_html(["setting", "value"], config_rows(doc), "harness-config-table")
