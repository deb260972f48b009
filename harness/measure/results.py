"""The results document: one JSON file per run (schema in docs/design.md), written atomically.

    >>> doc = new_document(config={"seed": 0})
    >>> doc["schema_version"]
    1
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import ResultsError

SCHEMA_VERSION = 1
PACKAGES = ("torch", "transformers", "peft", "tokenizers", "detoxify", "alt-profanity-check", "numpy", "scipy",
            "pandas", "pytest", "accelerate", "vaderSentiment", "krippendorff")
REQUIRED_KEYS = ("schema_version", "config", "samples", "metrics")
SAMPLE_KEYS = ("role", "suite", "category", "prompt_id", "prompt", "sample_index", "text", "scores")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "harness": __version__}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def new_document(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "harness_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": dict(config), "samples": [], "metrics": [], "comparisons": [], "extras": {}}


def base_config() -> dict[str, Any]:
    return {"packages": package_versions(), "platform": platform.platform(), "argv": list(sys.argv)}


def _clean(obj: Any) -> Any:
    """NaN/inf are not JSON: they become null (and a metric that is null is visible, never 'zero')."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def _new_file_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would give: the existing file's, else 0o666 minus the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write text via a temporary file in the same directory and ``os.replace``: never a half file.

    The file gets the permissions a plain write would (umask respected, an existing file's mode
    kept), not mkstemp's 0600. The one atomic writer of the package (results, ratings, keys).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _new_file_mode(path))
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path: str | Path, doc: Any) -> Path:
    """Write JSON (NaN/inf as null) atomically with :func:`write_text_atomic`."""
    text = json.dumps(_clean(doc), ensure_ascii=False, indent=1, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def write_results(path: str | Path, doc: Mapping[str, Any]) -> Path:
    return write_json_atomic(path, doc)


def read_results(path: str | Path) -> dict[str, Any]:
    """Read and validate a results (or baseline) file; errors name the file, the field and the fix."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: results file not found. Fix: check the path (write one with "
                           "--results-json).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not a JSON results file ({exc}). Fix: pass a file written by "
                           "--results-json.") from None
    except OSError as exc:  # a directory, no permission
        raise ResultsError(f"{path}: cannot read the results file ({exc.strerror or exc}). Fix: pass a "
                           "readable file written by --results-json.") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"{path}: expected a JSON object at the top level. Fix: pass a harness results file.")
    found = doc.get("schema_version")
    if "schema_version" not in doc:
        raise ResultsError(f"{path}: not a harness results file (no schema_version field). Fix: pass a file "
                           "written by --results-json.")
    if found != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version is {found!r}, this harness reads {SCHEMA_VERSION}. Fix: "
                           "re-run the suite with this harness version to regenerate the file.")
    for key in REQUIRED_KEYS:
        if key not in doc:
            raise ResultsError(f"{path}: field '{key}' is missing. Fix: regenerate the file with --results-json.")
    for key, kind in (("config", dict), ("samples", list), ("metrics", list)):
        if not isinstance(doc[key], kind):
            raise ResultsError(f"{path}: field '{key}' must be a JSON {'object' if kind is dict else 'list'}. "
                               "Fix: regenerate the file with --results-json.")
    for i, s in enumerate(doc["samples"]):
        if not isinstance(s, dict):
            raise ResultsError(f"{path}: samples[{i}] is not an object. Fix: regenerate the file.")
        missing = [k for k in SAMPLE_KEYS if k not in s]
        if missing:
            raise ResultsError(f"{path}: samples[{i}] lacks {', '.join(missing)}. Fix: regenerate the file.")
    doc.setdefault("comparisons", [])
    doc.setdefault("extras", {})
    return doc


def merge_documents(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Merge the results documents of several workers (pytest-xdist) into the single-process document."""
    from harness.measure.metrics import toxicity_records

    docs = [d for d in docs if d]
    if not docs:
        raise ResultsError("no pytest-xdist worker produced results; nothing to merge.")
    merged = dict(max(docs, key=lambda d: sum(1 for m in d["config"]["models"].values() if m.get("device"))))
    config = dict(merged["config"])
    for d in docs:
        for sid, info in d["config"].get("suites", {}).items():
            config.setdefault("suites", {}).setdefault(sid, info)
        if config.get("scorer") is None and d["config"].get("scorer"):
            config["scorer"] = d["config"]["scorer"]
    merged["config"] = config
    samples = {(s["role"], s["suite"], s["category"], s["prompt_id"], s["sample_index"]): s
               for d in docs for s in d["samples"]}
    merged["samples"] = [samples[k] for k in sorted(samples)]
    aggregated = {sid for sid, info in config.get("suites", {}).items() if info.get("toxicity_metrics")}
    merged["metrics"] = toxicity_records(s for s in merged["samples"] if s["suite"] in aggregated)
    extra = {}
    for d in docs:
        for m in d["metrics"]:
            if not m["metric"].split(".")[-1] in ("max", "mean", "expected_max", "probability", "toxic_fraction") \
                    or m["suite"] not in aggregated:
                extra[json_key(m)] = m
    merged["metrics"].extend(extra[k] for k in sorted(extra))
    comps = {(c["suite"], c.get("category") or "", c["metric"]): c for d in docs for c in d.get("comparisons", [])}
    merged["comparisons"] = [comps[k] for k in sorted(comps)]
    verdicts = {(v["case_id"], v["metric"]): v for d in docs for v in d.get("verdicts", [])}
    merged["verdicts"] = [verdicts[k] for k in sorted(verdicts)]
    merged["extras"] = {}
    for d in docs:
        for key, value in d.get("extras", {}).items():
            if isinstance(value, dict) and isinstance(merged["extras"].get(key), dict):
                merged["extras"][key].update(value)
            else:
                merged["extras"][key] = value
    run: dict[str, Any] = {"generated": {}, "cached": {}, "timings_s": {}, "warnings": [], "workers": len(docs)}
    for d in docs:
        for part in ("generated", "cached", "timings_s"):
            for k, v in d.get("run", {}).get(part, {}).items():
                run[part][k] = run[part].get(k, 0) + v
        run["warnings"].extend(w for w in d.get("run", {}).get("warnings", []) if w not in run["warnings"])
    merged["run"] = run
    return merged


def roles(doc: Mapping[str, Any], *, with_data: bool = False) -> list[str]:
    """The document's roles: configured models first, then any seen in metrics or samples.

    ``with_data``: only the roles holding samples or perplexity units (a perplexity-only run has no
    samples), sorted: the roles a comparison can read.

    >>> doc = {"config": {"models": {"candidate": {}, "baseline": {}}}, "samples": [{"role": "baseline"}]}
    >>> roles(doc), roles(doc, with_data=True)
    (['candidate', 'baseline'], ['baseline'])
    """
    if with_data:
        found = {str(s.get("role")) for s in doc.get("samples") or []}
        for extra in (doc.get("extras") or {}).values():
            if isinstance(extra, Mapping) and extra.get("kind") == "perplexity":
                found |= {str(u.get("role")) for u in extra.get("units", [])}
        return sorted(found)
    found = list(doc.get("config", {}).get("models", {}))
    found += [r.get("role") for r in [*doc.get("metrics", []), *doc.get("samples", [])]]
    return [r for r in dict.fromkeys(found) if r]


def candidate_role(doc: Mapping[str, Any]) -> str | None:
    """The role reported on: "candidate" when present, else the first role."""
    found = roles(doc)
    return "candidate" if "candidate" in found else (found[0] if found else None)


def reference_role(doc: Mapping[str, Any]) -> str | None:
    """The comparisons' reference side, else "baseline", else another role (or None)."""
    for comp in doc.get("comparisons", []):
        if comp.get("reference"):
            return str(comp["reference"])
    others = [r for r in roles(doc) if r != candidate_role(doc)]
    return "baseline" if "baseline" in others else (others[0] if others else None)


def json_key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
