"""Every code block of README.md and docs/*.md runs alone, so none can rot.

Each Python block (fenced as ``python`` or ``pycon``) runs in a fresh
namespace, as a reader who pastes it alone into a new session would run it:
a block with ``>>>`` prompts as a doctest, whose printed output must match,
other blocks as plain code. Shell blocks take minutes (``make demo``), so
they are checked instead of run: each ``make X`` must name a Makefile target,
each ``python some/file.py`` an existing file, and each ``python -m module``
a module of this repository or an installed one. Snippets run in an empty
working directory with an empty temporary directory and must leave both
empty, so a snippet that writes files uses an absolute temporary path and
cleans up after itself.

Whether ``docs/api.rst`` documents every public name is checked by the docs
build (``docs/ext/coverage_check.py``, in ``make docs``), not here.
"""

import doctest
import importlib.util
import pathlib
import re
import shlex
import tempfile

import markdown_it
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
PYTHON = {"python", "py", "pycon"}
SHELL = {"sh", "bash", "shell", "console"}
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def code_blocks(page: pathlib.Path) -> list[tuple[str, str, int]]:
  """Returns ``(language, code, first line)`` of each code block of a page.

  Indented blocks count as shell; myst directives other than code (an
  include, a toctree, an admonition) are not code blocks.
  """
  blocks = []
  for token in markdown_it.MarkdownIt("commonmark").parse(page.read_text()):
    if token.type not in ("fence", "code_block") or token.map is None:
      continue
    line = token.map[0] + 2  # the first line of code, counted from 1
    if token.type == "code_block":
      blocks.append(("sh", token.content, line - 1))
      continue
    language = token.info.split()[0] if token.info.strip() else ""
    if language.startswith("{") and "code" not in language:
      continue
    blocks.append((language, token.content, line))
  return blocks


def python_blocks() -> list:
  """One pytest param per Python block of every page, named page:line."""
  return [
    pytest.param(code, page, line, id=f"{page.relative_to(ROOT)}:{line}")
    for page in PAGES
    for language, code, line in code_blocks(page)
    if language in PYTHON
  ]


def run_python(code: str, where: str, line: int) -> None:
  """Runs one block in a fresh namespace: a doctest if it has prompts."""
  namespace: dict = {"__name__": "__main__"}
  if ">>>" not in code:
    exec(compile("\n" * (line - 1) + code, where, "exec"), namespace)
    return
  test = doctest.DocTestParser().get_doctest(
    code, namespace, where, where, line - 1
  )
  report: list[str] = []
  runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
  runner.run(test, out=report.append)
  if runner.failures:
    pytest.fail("".join(report), pytrace=False)


def module_exists(module: str) -> bool:
  """Whether ``python -m module`` finds it: in this repository, or installed.

  Run from the repository's root, ``examples.small_batch`` is the file
  ``examples/small_batch.py``; a tool such as ``build`` is installed.
  """
  path = ROOT.joinpath(*module.split("."))
  if path.with_suffix(".py").is_file() or (path / "__main__.py").is_file():
    return True
  return "." not in module and importlib.util.find_spec(module) is not None


def check_shell(code: str, where: str) -> None:
  """Checks that a shell block's make targets, scripts and modules exist."""
  makefile = (ROOT / "Makefile").read_text()
  targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
  for command in code.splitlines():
    words = shlex.split(command, comments=True)
    if words[:1] == ["make"]:
      for target in words[1:]:
        assert target in targets, f"{where}: no Makefile target {target!r}"
    for word, following in zip(words, words[1:]):
      if word == "-m":
        assert module_exists(following), f"{where}: no module {following}"
    for word in words:
      if word.endswith(".py"):
        assert (ROOT / word).is_file(), f"{where}: {word} does not exist"


@pytest.mark.optax_not_strict  # snippets run as users run them
@pytest.mark.parametrize(("code", "page", "line"), python_blocks())
def test_python_block_runs_alone(
  code: str,
  page: pathlib.Path,
  line: int,
  tmp_path: pathlib.Path,
  monkeypatch: pytest.MonkeyPatch,
):
  work, scratch = tmp_path / "cwd", tmp_path / "tmp"
  work.mkdir()
  scratch.mkdir()
  monkeypatch.chdir(work)
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  run_python(code, str(page), line)
  leftovers = [*work.iterdir(), *scratch.iterdir()]
  assert not leftovers, f"the snippet left files behind: {leftovers}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_is_python_or_checked_shell(page: pathlib.Path):
  for language, code, line in code_blocks(page):
    where = f"{page.relative_to(ROOT)}:{line}"
    if language in SHELL:
      check_shell(code, where)
    else:
      assert language in PYTHON, (
        f"{where}: a code block needs a language: python (it runs in the"
        f" tests) or sh (its commands are checked), not {language!r}"
      )
