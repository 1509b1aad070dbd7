"""Every code block of README.md and docs/*.md runs, so no snippet can rot.

Python blocks (fenced as ``python`` or ``pycon``) run in order in one
namespace per file, like a notebook: blocks with ``>>>`` prompts as doctests,
whose printed output must match, other blocks as plain code. Shell blocks
take minutes (``make demo``), so they are checked instead of run: each
``make X`` must name a Makefile target and each ``python some/file.py`` an
existing file. Snippets run in an empty working directory with an empty
temporary directory and must leave both empty, so a snippet that writes files
uses an absolute temporary path and cleans up after itself.
"""

import doctest
import pathlib
import re
import shlex
import tempfile

import markdown_it
import pytest

import optax_prox

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
PYTHON = {"python", "py", "pycon"}
SHELL = {"sh", "bash", "shell", "console"}
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def code_blocks(page: pathlib.Path) -> list[tuple[str, str, int]]:
  """Returns ``(language, code, first line)`` of each code block of a page.

  Indented blocks count as shell; myst directives other than code (an
  include, a toctree) are not code blocks.
  """
  blocks = []
  for token in markdown_it.MarkdownIt("commonmark").parse(page.read_text()):
    if token.type not in ("fence", "code_block") or token.map is None:
      continue
    line = token.map[0] + 2  # the first line of code, counted from 1
    if token.type == "code_block":
      blocks.append(("sh", token.content, line - 1))
    elif token.type == "fence":
      language = token.info.split()[0] if token.info.strip() else ""
      if language.startswith("{") and "code" not in language:
        continue
      blocks.append((language, token.content, line))
  return blocks


def run_python(code: str, namespace: dict, where: str, line: int) -> None:
  """Runs one block as a doctest if it has prompts, else as plain code."""
  if ">>>" not in code:
    exec(compile("\n" * (line - 1) + code, where, "exec"), namespace)
    return
  test = doctest.DocTestParser().get_doctest(
    code, namespace, where, where, line - 1
  )
  report: list[str] = []
  runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
  runner.run(test, out=report.append, clear_globs=False)
  namespace.update(test.globs)
  if runner.failures:
    pytest.fail("".join(report), pytrace=False)


def check_shell(code: str, where: str) -> None:
  """Checks that a shell block's make targets and python scripts exist."""
  makefile = (ROOT / "Makefile").read_text()
  targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
  for command in code.splitlines():
    words = shlex.split(command, comments=True)
    if words[:1] == ["make"]:
      for target in words[1:]:
        assert target in targets, f"{where}: no Makefile target {target!r}"
    for word in words:
      if word.endswith(".py"):
        assert (ROOT / word).is_file(), f"{where}: {word} does not exist"


@pytest.mark.optax_not_strict  # snippets run as users run them
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_block_runs(
  page: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
):
  work, scratch = tmp_path / "cwd", tmp_path / "tmp"
  work.mkdir()
  scratch.mkdir()
  monkeypatch.chdir(work)
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  namespace: dict = {"__name__": "__main__"}
  for language, code, line in code_blocks(page):
    where = f"{page.relative_to(ROOT)}:{line}"
    if language in PYTHON:
      run_python(code, namespace, str(page), line)
    elif language in SHELL:
      check_shell(code, where)
    else:
      pytest.fail(
        f"{where}: a code block needs a language: python (it runs"
        f" in the tests) or sh (its commands are checked), not"
        f" {language!r}"
      )
  leftovers = [*work.iterdir(), *scratch.iterdir()]
  assert not leftovers, f"{page.name}'s snippets left files behind: {leftovers}"


def test_included_readme_sections_exist():
  """Each docs page that includes a README section finds its headings."""
  for page in sorted(DOCS.glob("*.md")):
    for included, options in re.findall(
      r"```\{include\} (\S+)\n((?::.*\n)*)", page.read_text()
    ):
      text = (page.parent / included).read_text()
      for marker in re.findall(r':(?:start-after|end-before): "(.*)"', options):
        marker = marker.replace("\\n", "\n")
        assert marker in text, f"{page.name}: {included} has no {marker!r}"


def test_api_page_lists_every_public_name():
  api = (DOCS / "api.rst").read_text()
  listed = set(re.findall(r"^\.\. auto\w+:: (\w+)", api, re.MULTILINE))
  missing = sorted(set(optax_prox.__all__) - listed)
  assert not missing, f"docs/api.rst does not document {missing}"
