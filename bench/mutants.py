"""Mutation testing of the kernel service, the provisioner, the websocket bridge and the informer.

Run: ``make mutants`` (or ``python bench/mutants.py --help``).  Each mutant is one small change to
one line of a module below: a comparison turned round (``==`` -> ``!=``, ``<`` -> ``>=``, ``in`` ->
``not in``, ``is`` -> ``is not``), ``and`` <-> ``or``, a ``not`` dropped, a number changed by one,
``True`` <-> ``False``, a returned value replaced by ``None``, or a call statement (``await x()``,
``f()``) or an augmented assignment (``n -= 1``) removed.  Log calls, docstrings, annotations and
f-strings are left alone.  A mutant is *killed* when the module's tests (:data:`TARGETS`, a fast
subset, stopping at the first failure) fail or time out with it, and *survives* when they pass.

The mutants run in a copy of the working tree (``--work``, default a temporary directory), never in
the tree itself, one at a time, under ``nice``.  The run is long on a small machine, so by default a
seeded sample of every module's mutants is run (``--fraction``, ``--seed``); ``--fraction 1`` runs
them all.

Survivors that no test can kill, because the mutant behaves as the original does, are listed with
the reason in ``bench/mutants-survivors.txt`` (``path :: source line :: mutation :: why``); they do
not count against the score.  Every other survivor is printed.  The score (killed over mutants run,
the listed equivalents left out), the date, the counts per module and the survivors are written
to ``bench/mutants.json`` with ``--record``; ``--check`` exits 1 when the score is below the
recorded one.  ``--retriage`` runs the recorded survivors again with the current tests (once new
tests or equivalents were added) and updates the record.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "mutants.json"
EQUIVALENTS = ROOT / "bench" / "mutants-survivors.txt"

_KERNEL_TESTS = ["tests/test_kernels_state.py", "tests/test_kernel_waits.py", "tests/test_kernel_start_failures.py",
                 "tests/test_kernel_restarts.py", "tests/test_kernel_answers.py", "tests/test_websocket_culling.py",
                 "tests/test_kernels.py", "tests/test_kernels_across_gateways.py"]
_PROVISIONER_TESTS = ["tests/test_provisioner_apicalls.py", "tests/test_cleanup_retries.py",
                      "tests/test_provisioner_collection.py", "tests/test_provisioner_failures.py",
                      "tests/test_provisioner_unreliable_cluster.py", "tests/test_provisioner_lifecycle.py"]
_BRIDGE_TESTS = ["tests/test_websocket_protocol.py", "tests/test_websocket_culling.py", "tests/test_websocket.py"]

TARGETS: dict[str, list[str]] = {
    "gateway/kernels/service.py": _KERNEL_TESTS,
    "gateway/kernels/kernel.py": _KERNEL_TESTS,
    "gateway/kernels/restarts.py": _KERNEL_TESTS,
    "gateway/provisioner/pods.py": _PROVISIONER_TESTS,
    "gateway/provisioner/launchwait.py": _PROVISIONER_TESTS,
    "gateway/provisioner/cleanup.py": _PROVISIONER_TESTS,
    "gateway/provisioner/apicalls.py": _PROVISIONER_TESTS,
    "gateway/http/bridge.py": _BRIDGE_TESTS,
    "gateway/http/bridgestate.py": _BRIDGE_TESTS,
    "gateway/cluster/informer.py": ["tests/test_informer_deletions.py", "tests/test_informer_pacing.py",
                                    "tests/test_informer.py"],
}
"""Each module mutated, and the tests run against its mutants (fastest first: the run stops at the first failure)."""

FRACTIONS: dict[str, float] = {
    "gateway/kernels/service.py": 0.12, "gateway/kernels/kernel.py": 0.12, "gateway/kernels/restarts.py": 0.12,
    "gateway/provisioner/pods.py": 0.15, "gateway/provisioner/launchwait.py": 0.15,
    "gateway/provisioner/cleanup.py": 0.3, "gateway/provisioner/apicalls.py": 0.3,
    "gateway/http/bridge.py": 0.25, "gateway/http/bridgestate.py": 1.0, "gateway/cluster/informer.py": 0.4,
}
"""The share of each module's mutants ``make mutants`` runs: about an hour on two cores (the kernel service's
tests run real kernels and take a minute; the informer's take seconds)."""

_SWAPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=", ast.In: "in",
           ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_LOGGERS = {"log", "logger", "logging"}


@dataclass(frozen=True)
class Mutant:
    path: str
    line: int
    source_line: str
    mutation: str
    text: str
    """The whole mutated module."""

    @property
    def key(self) -> str:
        """How ``bench/mutants-survivors.txt`` names it: stable while the line's text stays as it is."""
        return f"{self.path} :: {self.source_line} :: {self.mutation}"


@dataclass
class Counts:
    mutants: int = 0
    run: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int = 0
    unmutated_tests_fail: bool = False


# ---------------------------------------------------------------------------------------------- generation


def _is_log_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id in _LOGGERS)


def _sites(tree: ast.Module) -> Iterator[tuple[ast.AST, str, str]]:
    """Every ``(node, replacement source, description)`` of the module, in source order."""
    found: list[tuple[ast.AST, str, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.JoinedStr, ast.Import, ast.ImportFrom)) or _is_log_call(node):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring
        found.extend(_mutations_of(node))
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "decorator_list", "type_comment"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    visit(child)

    visit(tree)
    found.sort(key=lambda site: (site[0].lineno, site[0].col_offset, site[2]))  # type: ignore[attr-defined]
    yield from found


def _mutations_of(node: ast.AST) -> Iterator[tuple[ast.AST, str, str]]:
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            swapped = _SWAPPED.get(type(op))
            if swapped is None:
                continue
            new = copy.deepcopy(node)
            new.ops[i] = swapped()
            yield node, f"({ast.unparse(new)})", f"{_SYMBOL[type(op)]} -> {_SYMBOL[swapped]}"
    elif isinstance(node, ast.BoolOp):
        flipped = copy.deepcopy(node)
        flipped.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield node, f"({ast.unparse(flipped)})", "and -> or" if isinstance(node.op, ast.And) else "or -> and"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node, f"({ast.unparse(node.operand)})", "not x -> x"
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield node, repr(not node.value), f"{node.value} -> {not node.value}"
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        yield node, repr(node.value + 1), f"{node.value!r} -> {node.value + 1!r}"
    elif isinstance(node, ast.Return) and node.value is not None and not isinstance(node.value, ast.Constant):
        yield node, "return None", "return x -> return None"
    elif isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)) and not _is_log_call(node.value):
        yield node, "pass", "call removed"
    elif isinstance(node, ast.AugAssign):
        yield node, "pass", "augmented assignment removed"


def _splice(lines: list[bytes], node: ast.AST, replacement: str) -> str:
    """The module with ``node``'s source span (AST offsets count UTF-8 bytes) replaced."""
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[attr-defined,operator]
    start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
    head = lines[first][:start]
    tail = lines[last][end:]
    new = lines[:first] + [head + replacement.encode() + tail] + lines[last + 1:]
    return b"".join(new).decode()


def mutants_of(path: str, root: Path = ROOT) -> list[Mutant]:
    """Every mutant of the module at ``path`` (relative to ``root``) that compiles."""
    source = (root / path).read_text()
    lines = source.encode().splitlines(keepends=True)
    tree = ast.parse(source)
    found: list[Mutant] = []
    for node, replacement, mutation in _sites(tree):
        text = _splice(lines, node, replacement)
        try:
            compile(text, path, "exec")
        except SyntaxError:
            continue
        line = node.lineno  # type: ignore[attr-defined]
        source_line = lines[line - 1].decode().strip()
        same = sum(1 for m in found if m.source_line == source_line and m.mutation.startswith(mutation))
        found.append(Mutant(path, line, source_line, mutation if not same else f"{mutation} #{same + 1}", text))
    return found


# ---------------------------------------------------------------------------------------------- running


def _copy_tree(source: Path, work: Path) -> Path:
    tree = work / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build",
        "*.egg-info"))
    return tree


def _pytest(tree: Path, tests: list[str], timeout: float) -> tuple[bool, float]:
    """Run ``tests`` in the copy; ``(passed, seconds)``.  Running out of ``timeout`` counts as failing."""
    command = ["nice", "-n", "15", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-o", "addopts=", "--timeout", str(int(timeout)), *tests]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    began = time.monotonic()
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        returncode = process.wait(timeout)
    except BaseException as stopped:  # out of time, or this script interrupted
        os.killpg(process.pid, signal.SIGKILL)  # the run and every kernel it started
        process.wait()
        if not isinstance(stopped, subprocess.TimeoutExpired):
            raise
        return False, time.monotonic() - began
    return returncode == 0, time.monotonic() - began


def _equivalents() -> dict[str, str]:
    """The survivors judged equivalent: key -> why."""
    if not EQUIVALENTS.exists():
        return {}
    known = {}
    for line in EQUIVALENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, why = line.rpartition(" :: ")
            known[key.strip()] = why.strip()
    return known


def _sample(everything: list[Mutant], fraction: float, seed: int, path: str) -> list[Mutant]:
    if fraction >= 1:
        return everything
    chosen = random.Random(f"{seed}:{path}").sample(everything, max(1, round(fraction * len(everything))))
    return sorted(chosen, key=lambda m: (m.line, m.mutation))


def _run_module(path: str, fraction: float, seed: int, source: Path, work: Path, equivalent: dict[str, str],
                survivors: list[str]) -> Counts:
    """Run a sample of one module's mutants in a copy of ``source`` under ``work``; its counts."""
    tree = _copy_tree(source, work)
    tests = [t for t in TARGETS[path] if (tree / t).exists()]
    passed, baseline = _pytest(tree, tests, timeout=1800)
    if not passed:
        print(f"{path}: its tests fail without any mutant ({' '.join(tests)}): not scored", flush=True)
        return Counts(mutants=len(mutants_of(path, tree)), unmutated_tests_fail=True)
    timeout = max(60.0, 3 * baseline)
    everything = mutants_of(path, tree)
    chosen = _sample(everything, fraction, seed, path)
    tally = Counts(mutants=len(everything))
    print(f"{path}: {len(chosen)} of {len(everything)} mutants, its tests take {baseline:.0f} s", flush=True)
    original = (tree / path).read_text()
    try:
        for mutant in chosen:
            (tree / path).write_text(mutant.text)
            passed, _ = _pytest(tree, tests, timeout)
            tally.run += 1
            if not passed:
                tally.killed += 1
            elif mutant.key in equivalent:
                tally.equivalent += 1
            else:
                tally.survived += 1
                survivors.append(mutant.key)
                print(f"  SURVIVED {path}:{mutant.line}: {mutant.mutation}  [{mutant.source_line}]", flush=True)
    finally:
        (tree / path).write_text(original)
    print(f"{path}: {tally}", flush=True)
    return tally


def run(modules: list[str], fraction: float | None, seed: int, source: Path, work: Path,
        jobs: int) -> dict[str, object]:
    """Every module's sample, ``jobs`` modules at a time (each in its own copy of the tree)."""
    equivalent = _equivalents()
    survivors: list[str] = []
    fractions = {path: fraction if fraction is not None else FRACTIONS[path] for path in modules}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {path: pool.submit(_run_module, path, fractions[path], seed, source, work / str(i), equivalent,
                                   survivors)
                   for i, path in enumerate(modules)}
        counts = {path: future.result() for path, future in futures.items()}
    total = Counts()
    for tally in counts.values():
        for name in ("mutants", "run", "killed", "survived", "equivalent"):
            setattr(total, name, getattr(total, name) + getattr(tally, name))
    scored = total.run - total.equivalent
    return {
        "date": date.today().isoformat(),
        "score": round(total.killed / scored, 4) if scored else 1.0,
        "seed": seed,
        "fractions": fractions,
        "totals": asdict(total),
        "modules": {path: asdict(tally) for path, tally in counts.items()},
        "survivors": sorted(survivors),
    }


def retriage(source: Path, work: Path) -> dict[str, object]:
    """Run the recorded survivors again with the current tests; the record with those now killed counted so."""
    result = json.loads(RESULTS.read_text())
    result.setdefault("before_triage", {"score": result["score"], "survived": result["totals"]["survived"]})
    equivalent = _equivalents()
    tree = _copy_tree(source, work)
    left: list[str] = []
    for key in result["survivors"]:
        path = key.split(" :: ", 1)[0]
        tally = result["modules"][path]
        found = [m for m in mutants_of(path, tree) if m.key == key]
        if key in equivalent:
            tally["survived"] -= 1
            tally["equivalent"] += 1
            continue
        if not found:  # the line changed since: the mutant is no more
            print(f"  GONE {key}", flush=True)
            left.append(key)
            continue
        original = (tree / path).read_text()
        (tree / path).write_text(found[0].text)
        try:
            passed, _ = _pytest(tree, [t for t in TARGETS[path] if (tree / t).exists()], timeout=1800)
        finally:
            (tree / path).write_text(original)
        if passed:
            print(f"  STILL SURVIVES {key}", flush=True)
            left.append(key)
        else:
            print(f"  now killed: {key}", flush=True)
            tally["survived"] -= 1
            tally["killed"] += 1
    totals = result["totals"]
    for name in ("killed", "survived", "equivalent"):
        totals[name] = sum(tally[name] for tally in result["modules"].values())
    scored = totals["run"] - totals["equivalent"]
    result["score"] = round(totals["killed"] / scored, 4) if scored else 1.0
    result["survivors"] = left
    result["retriaged"] = date.today().isoformat()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, help="share of every module's mutants to run (1: all; default: "
                        "FRACTIONS, sized for a two-core machine)")
    parser.add_argument("--seed", type=int, default=11, help="the sample's seed")
    parser.add_argument("--module", action="append", choices=sorted(TARGETS), help="only this module (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="modules run at the same time")
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree to mutate a copy of (default: this one)")
    parser.add_argument("--work", type=Path, help="where the tree is copied (default: a temporary directory)")
    parser.add_argument("--list", action="store_true", help="print the mutants and their count per module; run nothing")
    parser.add_argument("--retriage", action="store_true", help="run the recorded survivors again with the current "
                        "tests (after new tests or equivalents were added) and update the record; nothing else")
    parser.add_argument("--record", action="store_true", help=f"write the result to {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--check", action="store_true", help="exit 1 if the score is below the recorded one")
    args = parser.parse_args()
    modules = args.module or list(TARGETS)
    if args.list:
        for path in modules:
            found = mutants_of(path)
            print(f"{path}: {len(found)}")
            for mutant in found:
                print(f"  {mutant.line}: {mutant.mutation}  [{mutant.source_line}]")
        return
    if args.retriage:
        with tempfile.TemporaryDirectory(prefix="kernelgate-mutants-") as scratch:
            retriaged = retriage(args.source, args.work or Path(scratch))
        RESULTS.write_text(json.dumps(retriaged, indent=2) + "\n")
        print(f"score {retriaged['score']}, {len(retriaged['survivors'])} survivors left")  # type: ignore[arg-type]
        return
    with tempfile.TemporaryDirectory(prefix="kernelgate-mutants-") as scratch:
        result = run(modules, args.fraction, args.seed, args.source, args.work or Path(scratch), args.jobs)
    print(json.dumps({k: v for k, v in result.items() if k != "survivors"}, indent=2))
    broken = [path for path, counts in result["modules"].items() if counts["unmutated_tests_fail"]]  # type: ignore[attr-defined]
    if broken:
        sys.exit(f"the tests of {', '.join(broken)} fail without any mutant: no score")
    recorded = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    if args.record:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.check and recorded is not None and result["score"] < recorded["score"]:  # type: ignore[operator]
        sys.exit(f"mutation score {result['score']} is below the recorded {recorded['score']} ({recorded['date']})")


if __name__ == "__main__":
    main()
