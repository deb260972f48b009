"""Install the harness with the right torch build for this machine, then the package itself.

    python tools/install.py            # torch (CPU or CUDA build), then `pip install -e .`
    python tools/install.py --dev      # ... then `pip install -e ".[dev]"` (tests)
    python tools/install.py --cpu      # force the CPU build (--cuda: force the CUDA build)

Why: on Linux a bare `pip install torch` from PyPI is the CUDA build (about 6 GB with its nvidia
packages) even on a machine without a GPU. This script installs the CPU build on machines without
an NVIDIA GPU (from PyTorch's CPU index; where that index cannot be reached, from the configured
index pinned to a version; each candidate is checked with pip's dry-run report first, and the
script says which build it got), the default CUDA build where
`nvidia-smi` sees a GPU, and leaves an already installed torch alone. Standard library only.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PINNED = "torch==2.13.0"   # fallback when the CPU index is unreachable (a mirror may serve its CPU build)
ROOT = Path(__file__).resolve().parent.parent


def pip(*args: str, timeout: float | None = None) -> bool:
    cmd = [sys.executable, "-m", "pip", "install", "-q", *args]
    print("+", " ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"  (gave up after {timeout:.0f} s)", flush=True)
        return False


def resolves_to_cpu_build(*spec: str) -> bool:
    """Whether ``pip install *spec`` would install a torch without CUDA packages (pip's dry-run report)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--report",
               str(report), *spec]
        try:
            if subprocess.run(cmd, capture_output=True, timeout=900).returncode != 0 or not report.exists():
                return False
        except subprocess.TimeoutExpired:
            return False
        names = [item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]]
    return "torch" in names and not any(n.startswith(("nvidia-", "cuda-")) for n in names)


def installed_torch() -> str | None:
    """'2.13.0 (CPU)' / '2.13.0 (CUDA 12.8)' for the torch importable by this interpreter, else None."""
    code = "import torch; print(torch.__version__, torch.version.cuda or '')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    version, _, cuda = out.stdout.strip().partition(" ")
    return f"{version} ({'CUDA ' + cuda if cuda else 'CPU'})"


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def install_torch(build: str) -> int:
    have = installed_torch()
    if have:
        print(f"torch {have} already installed: kept", flush=True)
        return 0
    if build == "cuda":
        ok = pip("torch")
    else:   # the first candidate whose resolution pulls no CUDA packages
        fast = ("--retries", "1", "--timeout", "15")   # the probe and the install resolve alike
        candidates = [("torch", "--index-url", CPU_INDEX, *fast), (PINNED, *fast)]
        chosen = next((c for c in candidates if resolves_to_cpu_build(*c)), None)
        if chosen is None:
            print("warning: no CPU-only torch build is reachable from here; installing the default build.",
                  file=sys.stderr)
            chosen = ("torch",)
        ok = pip(*chosen)
    have = installed_torch()
    if not ok or not have:
        print("error: torch could not be installed; install it by hand (https://pytorch.org/get-started) and "
              "run this script again.", file=sys.stderr)
        return 1
    print(f"installed torch {have}", flush=True)
    if build == "cpu" and "CUDA" in have:
        print("warning: the CPU build was asked for but a CUDA build was installed (the CPU index was "
              f"unreachable); it works on CPU, only larger. For the CPU build: pip install torch --index-url "
              f"{CPU_INDEX}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dev", action="store_true", help="also install the test dependencies (.[dev])")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--cpu", action="store_true", help="install the CPU build of torch")
    group.add_argument("--cuda", action="store_true", help="install the CUDA build of torch")
    args = ap.parse_args(argv)
    build = "cpu" if args.cpu else "cuda" if args.cuda else ("cuda" if has_nvidia_gpu() else "cpu")
    print(f"torch build for this machine: {build}", flush=True)
    if install_torch(build):
        return 1
    target = f"{ROOT}[dev]" if args.dev else str(ROOT)
    return 0 if pip("-e", target) else 1


if __name__ == "__main__":
    sys.exit(main())
