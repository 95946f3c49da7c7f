"""Every command the README and docs/ show stays valid, and every function they name exists.

A command is checked against the real command line, without starting a ZooKeeper: each one is parsed by
the argparse parser of the module that would run it (the rich demos' `parse_args`, `zk`, `tree`, `check`,
`exercise`, `soak`, the benchmarks, the launcher, the challenge scripts). `./run.sh help` is cheap, so it
is run. A harness does all of it in one child process (this file, run as a script), so the file stays fast.

What counts as a shown command:
- in a ```bash (or sh) block, every line that is not a comment; in a ```console block, every `$ ` line;
- inline code (`...`) outside blocks that starts with `./run.sh`, `bash start_venv.sh` or `python `,
  possibly after `VAR=value` settings.
Blocks of any other kind (```text: output, synopses) are not commands. Placeholders in commands are
replaced by an example (PLACEHOLDERS). A `ZK_HOSTS=...` setting is checked by the lab's one --zk grammar.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_BLOCKS = {"bash", "sh", "shell"}
PROMPT_BLOCKS = {"console"}
COMMAND_START = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\./run\.sh|bash start_venv\.sh|python3? )")
# Words a doc writes for "your value here", and the example each stands for when parsed.
PLACEHOLDERS = {"N": "1", "HOSTS": "127.0.0.1:2181", "HOST:PORT": "127.0.0.1:2181", "PATH": "/lab",
                "FILE": "events.jsonl", "DIR": ".", "SEED": "5", "MINUTES": "1", "CHALLENGE": "leader"}
# Commands the docs show on purpose as refused (the one rule's examples): each must still be refused.
SHOWN_AS_REFUSED = {"./run.sh leader --workers 0"}
TEST_COMMAND = "bash start_venv.sh --dev python -m pytest"
HARNESS_TIMEOUT = 60  # one child parses every command; importing kazoo and the lab takes a few seconds


# ---------------------------------------------------------------- finding the commands

def shown_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command text) for every command `path` shows."""
    found: list[tuple[int, str]] = []
    block: str | None = None
    prose: list[tuple[int, str]] = []  # lines outside blocks: inline code may wrap onto the next line
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = re.match(r"^\s*```(\w*)", line)
        text = line.strip()
        if fence:
            block = None if block is not None else fence.group(1)
        elif block in COMMAND_BLOCKS and text and not text.startswith("#"):
            found.append((number, text))
        elif block in PROMPT_BLOCKS and text.startswith("$ "):
            found.append((number, text[2:]))
        elif block is None and not text.startswith("#"):  # a heading names a command, it does not run it
            prose.append((number, line))
    text = "\n".join(line for _, line in prose)
    for span in re.finditer(r"`([^`]+)`", text):
        command = " ".join(span.group(1).split())
        if COMMAND_START.match(command):
            found.append((prose[text.count("\n", 0, span.start())][0], command))
    return sorted(found)


def split_command(text: str) -> list[list[str]]:
    """The simple commands in one shell line (split at |, ;, &&, ||), each without its VAR= settings."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in {"|", ";", "&&", "||", "&"}:
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def _all_commands() -> list[tuple[str, list[str]]]:
    """("FILE:LINE", argv) for every command in the README and docs/, placeholders filled in."""
    shown = []
    for path in DOCS:
        for number, text in shown_commands(path):
            for words in split_command(text):
                shown.append((f"{path.relative_to(ROOT)}:{number}", [PLACEHOLDERS.get(w, w) for w in words]))
    return shown


# ---------------------------------------------------------------- the harness (runs in a child process)

class Parsed(Exception):
    """Raised by the patched ArgumentParser.parse_args once a command line parsed: stop before any work."""


def _parse_only(run, argv: list[str]) -> None:
    """Call run(argv) (a module's main or parse_args), stopping as soon as its arguments parsed."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_then_stop
    try:
        if inspect.signature(run).parameters:
            run(argv)
        else:  # a main() that reads sys.argv (python -m bench)
            sys.argv = [sys.argv[0], *argv]
            run()
    except Parsed:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original


def _module_parser(name: str):
    """The function that parses a module's command line: its parse_args if it has one, else main."""
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations is not None:  # python -m PACKAGE runs its __main__
        name = f"{name}.__main__"
    module = importlib.import_module(name)
    return getattr(module, "parse_args", None) or module.main


def _script_main(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass looks its module up while the module loads
    spec.loader.exec_module(module)
    return module.main


def _runner(argv: list[str]) -> None:
    """./run.sh ARGS: the runner's commands, each parsed by the module that runs it."""
    from zklab import run

    if argv[:1] == ["-v"]:  # the runner's own: a traceback when something fails
        argv = argv[1:]
    name, rest = (argv[0], argv[1:]) if argv else ("help", [])
    rest = [word for word in rest if word != "--yes"]  # the runner's own option; the command never sees it
    if name in ("help", "--help", "-h"):
        with contextlib.redirect_stdout(io.StringIO()):
            code = run.main([name])
        assert code == 0, f"`./run.sh {name}` exited {code}"
    elif name in ("leader", "hashing"):
        if "--zk" not in rest:
            rest += ["--zk", "127.0.0.1:2181"]  # what the runner adds once it found a ZooKeeper
        try:
            _parse_only(_module_parser(f"zklab.demo_{name}"), rest)
        except ModuleNotFoundError:  # before the rich demos: the runner runs the script
            _parse_only(_script_main(run.CHALLENGES[name]), rest)
    elif name == "smoke":
        run._smoke_parser().parse_args(rest)
    elif name in run.MODULES:
        _parse_only(_module_parser(run.MODULES[name]), rest)
    else:
        raise AssertionError(f"./run.sh has no command {name!r}")


def _python(argv: list[str]) -> None:
    """python -m MODULE ARGS, or python SCRIPT ARGS."""
    if argv[:2] == ["-m", "pytest"]:
        paths = [a.split("::")[0] for a in argv[2:] if not a.startswith("-") and ("/" in a or a.endswith(".py"))]
        missing = [path for path in paths if not (ROOT / path).exists()]
        assert not missing, f"pytest is given paths that do not exist: {missing}"
    elif argv[0] == "-m":
        _parse_only(_module_parser(argv[1]), argv[2:])
    else:
        _parse_only(_script_main(argv[0]), argv[1:])


def check_one(argv: list[str]) -> None:
    """Raise (or exit non-zero) when the command shown as argv is not valid."""
    settings = [w.split("=", 1) for w in argv if re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
    argv = argv[len(settings):]
    for name, value in settings:
        if name == "ZK_HOSTS":
            from zklab.plumbing import parse_zk

            parse_zk(value)
    if argv[0] in ("./run.sh", "run.sh") or argv[:2] == ["bash", "run.sh"]:
        _runner(argv[2:] if argv[0] == "bash" else argv[1:])
    elif argv[:2] == ["bash", "start_venv.sh"]:
        rest = [w for w in argv[2:] if w != "--dev"]
        if rest:  # without a command it opens a shell
            check_one(rest)
    elif argv[0] in ("python", "python3"):
        _python(argv[1:])
    # anything else (docker, zkCli.sh, head, ...) is not the lab's to parse


def harness(commands: list[list[str]]) -> list[str | None]:
    """For each command: None when it is valid, else what is wrong with it, in one line."""
    verdicts = []
    for argv in commands:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                check_one(argv)
            verdicts.append(None)
        except SystemExit as exc:
            last = err.getvalue().strip().splitlines()[-1:] or [""]
            verdicts.append(None if exc.code in (0, None) else f"exit {exc.code}: {last[0]}")
        except Exception as exc:  # noqa: BLE001 - any failure is the verdict we report
            verdicts.append(f"{type(exc).__name__}: {exc}")
    return verdicts


# ---------------------------------------------------------------- the tests

def test_every_shown_command_parses_against_the_real_command_line() -> None:
    """Each command in the README and docs/ is accepted by the parser that would run it (no server starts)."""
    shown = _all_commands()
    assert len(shown) > 20, f"found only {len(shown)} commands: is the extraction broken?"
    result = subprocess.run([sys.executable, __file__], cwd=ROOT, input=json.dumps([argv for _, argv in shown]),
                            capture_output=True, text=True, timeout=HARNESS_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    verdicts = json.loads(result.stdout.strip().splitlines()[-1])
    wrong = []
    for (where, argv), verdict in zip(shown, verdicts, strict=True):
        if (shlex.join(argv) in SHOWN_AS_REFUSED) != bool(verdict):
            wrong.append(f"{where}: {shlex.join(argv)}\n      {verdict or 'accepted, though the docs show it refused'}")
    assert not wrong, f"{len(wrong)} of {len(shown)} commands shown in the docs are not valid:\n  " + "\n  ".join(wrong)


def test_harness_catches_a_wrong_command() -> None:
    """The check is not vacuous: a misspelt option, an unknown command and a bad ZK_HOSTS are each caught."""
    wrong = [["./run.sh", "zk", "start", "--servers", "2"], ["./run.sh", "frobnicate"],
             ["ZK_HOSTS=host_1:2181", "./run.sh", "smoke"], ["python", "-m", "pytest", "tests/test_nothing.py"]]
    result = subprocess.run([sys.executable, __file__], cwd=ROOT, input=json.dumps(wrong), capture_output=True,
                            text=True, timeout=HARNESS_TIMEOUT)
    verdicts = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(verdicts), list(zip(wrong, verdicts, strict=True))


def test_readme_test_command_is_what_ci_runs() -> None:
    """The README's test command is exactly the command .ci/run runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert TEST_COMMAND in [text for _, text in shown_commands(ROOT / "README.md")], (
        f"README.md does not show the test command `{TEST_COMMAND}`")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    # The command itself, without what the script does with its status (`|| status=$?`).
    runs = [shlex.join(split_command(line)[0]) for line in ci if line.startswith("bash start_venv.sh")]
    assert runs == [TEST_COMMAND], f".ci/run runs {runs}, the README says {TEST_COMMAND!r}"
    assert readme.count("python -m pytest") >= 1


def test_links_between_the_docs_resolve() -> None:
    """Every relative link in the README and docs/ points at a file that exists."""
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if not re.match(r"^[a-z]+:", target) and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, "links to nothing: " + ", ".join(broken)


def _defined_names(script: str) -> set[str]:
    """Qualified names of the functions and classes a script defines: `LeaderElection._sync`, `point`."""
    import ast

    names: set[str] = set()
    tree = ast.parse((ROOT / script).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{item.name}" for item in node.body if isinstance(item, ast.FunctionDef))
    return names


def test_rules_tables_name_functions_that_exist() -> None:
    """Each rule in the README's rules tables names the function that holds it, and that function exists."""
    defined = _defined_names("challenge_leader_election.py") | _defined_names("challenge_consistent_hashing.py")
    named, rows = [], 0
    column = None
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            column = None
        elif column is None and "held by" in cells:
            column = cells.index("held by")
        elif column is not None and not set(cells[column]) <= set("-: "):
            rows += 1
            found = re.findall(r"`([A-Za-z_][\w.]*)(?:\(\))?`", cells[column])
            assert found, f"a rule names no function: {line}"
            named.extend(found)
    assert rows >= 14, f"the README's rules tables have {rows} rules with a 'held by' column; want both challenges'"
    missing = sorted(set(named) - defined)
    assert not missing, f"the rules tables name functions the scripts do not define: {missing}"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(harness(json.loads(sys.stdin.read()))))
