"""Helpers for the checker's proofs: replace one function of a script by qualname (ast), run the checker on
the copy in a process of its own, and read its lines back: key -> (held?, figure, advice)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zklab.check import SAME_ADVICE, guarantees
from zklab.check_lab import ROOT, SCRIPTS
from zklab.exercise import find_function, replace_function

MARKS = {"\u2714": True, "ok": True, "\u2718": False, "XX": False}
SAME = re.compile(re.escape(SAME_ADVICE).replace(r"\{\}", "(.*)"))


def function_source(text: str, qualname: str) -> str:
    node = find_function(text, qualname)
    return ast.get_source_segment(text, node, padded=False) or ""


def transform_function(text: str, qualname: str, change: Callable[[ast.FunctionDef], None]) -> str:
    """Apply `change` to the parsed def of `qualname` and put its unparsed source back in place."""
    node = find_function(text, qualname)
    change(node)
    ast.fix_missing_locations(node)
    return replace_function(text, qualname, ast.unparse(node))


def edited_names(text: str, find: str) -> set[str]:
    """The qualnames of the functions (or module-level names) whose source holds the text `find`."""
    start = text.index(find)
    first, last = text.count("\n", 0, start) + 1, text.count("\n", 0, start + len(find)) + 1
    names: set[str] = set()

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if node.end_lineno < first or node.lineno > last:
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(prefix + node.name)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))

    visit(ast.parse(text).body, "")
    return names


@dataclass
class Outcome:
    verdicts: dict[str, tuple[bool, str, str]]   # key -> (held?, figure, advice)
    output: str
    code: int

    def failed(self) -> set[str]:
        return {k for k, (ok, _, _) in self.verdicts.items() if not ok}


def copy_scripts(workdir: Path, changes: dict[str, str] | None = None) -> Path:
    """The challenge scripts copied into `workdir`, with `changes` (script file -> new text) applied."""
    workdir.mkdir(parents=True, exist_ok=True)
    for script in SCRIPTS.values():
        shutil.copy(ROOT / script, workdir / script)
    for script, text in (changes or {}).items():
        (workdir / script).write_text(text)
    return workdir


def run_checker(challenge: str, scripts: Path, *extra: str, timeout: float = 120) -> Outcome:
    result = subprocess.run([sys.executable, "-m", "zklab.check", challenge, "--scripts", str(scripts), *extra],
                            cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    return Outcome(parse(result.stdout, challenge), result.stdout + result.stderr, result.returncode)


def parse(output: str, challenge: str) -> dict[str, tuple[bool, str, str]]:
    """key -> (held?, figure, advice) from `<mark> <words>: <figure>` lines and the indented advice below."""
    words = guarantees(challenge)
    found: dict[str, list] = {}
    by_words, current = {}, None
    for line in output.splitlines():
        mark, _, rest = line.partition(" ")
        key = next((k for k, w in words.items() if mark in MARKS and rest.startswith(w + ":")), None)
        if key is not None:
            found[key] = [MARKS[mark], rest[len(words[key]) + 2:], ""]
            by_words[words[key]], current = key, key
        elif current and line.startswith("    ") and not found[current][2]:
            same = SAME.fullmatch(line.strip())
            found[current][2] = found[by_words[same.group(1)]][2] if same else line.strip()
        elif current and line.startswith("    ") and not line.startswith("     ") and "|" not in line:
            found[current][2] += " " + line.strip()
        else:
            current = None if not line.startswith("    ") else current
    return {k: (v[0], v[1], v[2]) for k, v in found.items()}
