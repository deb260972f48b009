"""The compact end-of-run terminal summary, computed from the results document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SUMMARY_METRICS = ("toxicity.expected_max", "toxicity.probability", "toxicity.toxic_fraction")


def summary_lines(doc: Mapping[str, Any], verbose: bool = False) -> list[str]:
    """Per-category EMT / toxicity probability with k and the scorer; generation counts; comparisons."""
    cfg = doc["config"]
    scorer = (cfg.get("scorer") or {}).get("name", "?")
    lines = []
    for role, m in cfg.get("models", {}).items():
        adapter = f" + adapter {m['adapter']}" if m.get("adapter") else ""
        fp = (m.get("fingerprint") or "")[:19]
        lines.append(f"{role}: {m['path']}{adapter} [{fp}]")
    run = doc.get("run", {})
    gen, cached = run.get("generated", {}), run.get("cached", {})
    lines.append("samples: " + ", ".join(f"{r} {gen.get(r, 0)} generated / {cached.get(r, 0)} from cache"
                                         for r in gen) + f"; scorer {scorer}; seed {cfg.get('seed')}")
    kinds = {sid: info.get("kind") for sid, info in cfg.get("suites", {}).items()}
    rows = [r for r in doc["metrics"] if r.get("prompt_id") is None and r["metric"] in SUMMARY_METRICS
            and kinds.get(r["suite"]) == "values"]
    if rows:
        ref = {(r["suite"], r["category"], r["metric"]): r["value"] for r in rows if r["role"] != "candidate"}
        header = f"{'suite/category':<38} {'EMT':>7} {'tox.prob':>8} {'toxic%':>7} {'k':>3} {'n':>4}"
        if ref:
            header += f" {'ref EMT':>8}"
        lines.append(header)
        by_case: dict[tuple[str, Any], dict[str, Any]] = {}
        for r in rows:
            if r["role"] == "candidate":
                by_case.setdefault((r["suite"], r["category"]), {})[r["metric"]] = r
        for (suite, category), ms in sorted(by_case.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or "")):
            emt = ms.get("toxicity.expected_max")
            name = f"{suite}/{category}" if category else f"{suite} (all)"
            line = (f"{name:<38} {emt['value']:>7.3f} {ms['toxicity.probability']['value']:>8.3f} "
                    f"{ms['toxicity.toxic_fraction']['value']:>7.1%} {emt['k']:>3} {emt['n']:>4}")
            if ref:
                rv = ref.get((suite, category, "toxicity.expected_max"))
                line += f" {rv:>8.3f}" if rv is not None else f" {'-':>8}"
            lines.append(line)
    for c in doc.get("comparisons", []):
        verdict = "REGRESSION" if c.get("regression") else ("underpowered" if c.get("underpowered") else "ok")
        lines.append(f"{c['suite']}/{c.get('category') or '(all)'} {c['metric']}: candidate {c['candidate_value']:.3f} "
                     f"vs reference {c['reference_value']:.3f}, p_adj {c.get('p_adjusted', float('nan')):.3g} {verdict}")
    extra = [r for r in doc["metrics"] if kinds.get(r["suite"]) != "values" and r["role"] == "candidate"]
    for r in extra if verbose or len(extra) <= 30 else extra[:30]:
        group = f" [{r['group']}]" if r.get("group") else ""
        value = r["value"]
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        lines.append(f"{r['suite']}/{r.get('category') or '(all)'} {r['metric']}{group} = {shown}")
    return lines
