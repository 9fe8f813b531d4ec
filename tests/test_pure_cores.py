"""The cores are pure: policies/ and pricing/ read no file and no clock and open no socket; their
loaders (policies/loaders.py, pricing/loaders.py) are the only modules that do, and no core
module imports them. Checked statically over every core module, and by running a decision and a
pricing in a fresh interpreter where any such access raises."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADERS = {"loaders"}
IO_ATTRS = {
    "read_text",
    "write_text",
    "read_bytes",
    "write_bytes",
    "savez",
    "savez_compressed",
    "now",
    "utcnow",
    "today",
    "time",
    "time_ns",
    "monotonic",
    "perf_counter",
    "urlopen",
    "metadata",
}
IO_MODULES = {"socket", "urllib", "httpx", "requests", "time", "importlib", "pathlib", "shutil", "os"}


def core_modules() -> list[Path]:
    return sorted(p for pkg in ("policies", "pricing") for p in (ROOT / pkg).rglob("*.py") if p.stem not in LOADERS)


def test_no_core_module_reaches_files_clock_or_network() -> None:
    found = []
    for path in core_modules():
        tree = ast.parse(path.read_text())
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
                found.append(f"{where}:{node.lineno} open()")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in IO_ATTRS:
                found.append(f"{where}:{node.lineno} .{node.func.attr}()")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("np", "json", "yaml", "orjson")
                and node.func.value.id == "np"
            ):
                found.append(f"{where}:{node.lineno} np.load()")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    if name.split(".")[0] in IO_MODULES:
                        found.append(f"{where}:{node.lineno} imports {name}")
                    if name.split(".")[-1] in LOADERS:
                        found.append(f"{where}:{node.lineno} imports the loaders ({name})")
    assert not found, "I/O in the cores:\n" + "\n".join(found)


PROBE = r"""
import sys, time

# third-party libraries the cores use are imported first (their own start-up reads package metadata);
# everything of ours is imported, and runs, with the guard on
import numpy, orjson, pydantic, yaml  # noqa: E401, F401

def refuse(*a, **k):
    raise RuntimeError("the clock was read")

for name in ("time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"):
    setattr(time, name, refuse)
seen = []

def hook(event, args):
    if event == "open" and not str(args[0]).endswith((".py", ".pyc", ".so", ".pth")) and "__editable__" not in str(args[0]):
        seen.append(f"open {args[0]}")
        raise RuntimeError(f"a file was opened: {args[0]}")
    if event.startswith(("socket.", "urllib.")):
        seen.append(event)
        raise RuntimeError(f"network: {event}")

sys.addaudithook(hook)

import random
from datetime import datetime, timezone

from policies.decide import CandidateInfo, PolicyRouter, RequestFeatures
from policies.quality import QualityModel
from policies.schema import parse_policy
from pricing import PriceCatalog, Usage, attribute, cost_of, profiles_from_doc

catalog = PriceCatalog.from_documents(
    {"small": {"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7, "litellm_provider": "p", "mode": "chat"},
     "big": {"input_cost_per_token": 5e-6, "output_cost_per_token": 1.5e-5, "litellm_provider": "p", "mode": "chat"}},
    [("later", {"models": {"big": [{"effective_from": "2030-01-01", "input_per_mtok": 1.0, "output_per_mtok": 2.0}]}})])
at = datetime(2026, 12, 1, tzinfo=timezone.utc)
policy = parse_policy("name: p\nbind: {aliases: [auto]}\ncandidates: [small, big]\n"
                      "objective: {type: cheapest_above, target: 0.8}\n"
                      "quality: {priors: {small: 0.6, big: 0.9}, bandit: {enabled: false}}\n")
infos = [CandidateInfo(name=n, provider="p", price=catalog.price(n, at)) for n in ("small", "big")]
d = PolicyRouter(policy, QualityModel(policy.quality, {})).decide(
    RequestFeatures(prompt="Prove it.", prompt_tokens=1000, max_tokens=200), infos, random.Random(0))
assert d.order == ["big", "small"], d.order
cost = cost_of(Usage(1000, 200), catalog.price("big", at)).total
assert abs(cost - (1000 * 5e-6 + 200 * 1.5e-5)) < 1e-12, cost
assert catalog.price("big", datetime(2031, 1, 1, tzinfo=timezone.utc)).input == 1e-6
import yaml
profiles = profiles_from_doc(yaml.safe_load(PROFILES))
w = attribute(Usage(1000, 200), charge=cost * 1.2, api_cost=cost, profile=profiles["h200"], model_class="mid")
assert w.charge == cost * 1.2 and w.layers and all(layer.revenue >= 0 for layer in w.layers), w
print("PURE", d.rule, round(cost, 6), seen)
"""


def test_a_decision_and_a_pricing_run_with_files_clock_and_network_forbidden() -> None:
    profiles = (ROOT / "pricing" / "data" / "profiles.yaml").read_text()  # read here: the probe may not
    script = f"PROFILES = {profiles!r}\n" + PROBE
    env = {**os.environ, "PYDANTIC_DISABLE_PLUGINS": "__all__"}  # pydantic looks for plugins in package metadata
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and "PURE cheapest_above(0.80) 0.008 []" in r.stdout, r.stdout + r.stderr
