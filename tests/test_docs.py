"""Every code block of README.md and the docs runs here, so none can rot.

A reader pastes a Python block into a fresh ``python`` prompt, or saves it
as a script, so each ``python`` block is complete (its imports included) and
has no ``>>>`` prompts, which would not paste. Each block runs twice, in a
fresh namespace each time:

- as a script. What it prints must match the ``text`` block right after it,
  if there is one (doctest's rules: ``...`` matches anything, and runs of
  whitespace are equal);
- line by line through ``code.InteractiveConsole``, as the classic ``python``
  prompt reads a paste, and nothing may raise. This catches what only the
  prompt rejects, such as a ``def`` or a ``for`` without the blank line that
  closes it before the next statement.

A line that raises on purpose stays out of the copyable blocks: a page shows
it in a ``text`` block as a ``>>>`` transcript with its error, which runs
here as a doctest in the namespace the page's previous Python block left.
The docs' copy button leaves out both kinds of ``text`` block
(``docs/conf.py``).

Shell blocks take minutes (``make demo``), so they are checked instead of
run: each ``make X`` must name a Makefile target, each ``python some/file.py``
an existing file, and each ``python -m module`` a module of this repository
or an installed one.

Blocks run in an empty working directory with an empty temporary directory
and must leave both empty, so a block that writes files uses an absolute
temporary path and cleans up after itself. The pages are README.md and every
``.md`` file under ``docs/`` but the study's outputs (``docs/results/``) and
the build (``docs/_build/``); a new page joins by being there. Whether
``docs/api.rst`` documents every public name is checked by the docs build
(``docs/ext/coverage_check.py``, in ``make docs``), not here.
"""

import code
import dataclasses
import doctest
import importlib.util
import pathlib
import re
import shlex
import tempfile
import traceback

import markdown_it
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOT_PAGES = (DOCS / "results", DOCS / "_build")
PAGES = [
  ROOT / "README.md",
  *sorted(
    page
    for page in DOCS.rglob("*.md")
    if not any(page.is_relative_to(folder) for folder in NOT_PAGES)
  ),
]
PYTHON = {"python", "py"}
SHELL = {"sh", "bash", "shell", "console"}
TEXT = "text"
PROMPT = re.compile(r"^\s*>>>", re.MULTILINE)
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclasses.dataclass(frozen=True)
class Block:
  """A fenced (or indented) code block of a page."""

  page: pathlib.Path
  language: str
  code: str
  line: int  # the first line of code, counted from 1
  after_code: bool  # whether it directly follows another code block

  @property
  def where(self) -> str:
    return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclasses.dataclass(frozen=True)
class Example:
  """A Python block, the output it prints, and the transcripts after it."""

  block: Block
  output: Block | None
  transcripts: tuple[Block, ...]


def code_blocks(page: pathlib.Path) -> list[Block]:
  """Returns the code blocks of a page, in order.

  Indented blocks count as shell; myst directives other than code (an
  include, a toctree, an admonition) are not code blocks.
  """
  blocks = []
  tokens = markdown_it.MarkdownIt("commonmark").parse(page.read_text())
  for i, token in enumerate(tokens):
    if token.type not in ("fence", "code_block") or token.map is None:
      continue
    after_code = i > 0 and tokens[i - 1].type in ("fence", "code_block")
    info = token.info.split() if token.type == "fence" else ["sh"]
    language = info[0] if info else ""
    if language in ("{code-block}", "{code}", "{sourcecode}"):
      language = info[1] if len(info) > 1 else ""
    elif language.startswith("{"):
      continue
    line = token.map[0] + (2 if token.type == "fence" else 1)
    blocks.append(Block(page, language, token.content, line, after_code))
  return blocks


def examples(page: pathlib.Path) -> list[Example]:
  """Each Python block of a page with its output and transcripts.

  A ``text`` block right after a Python block is its output, unless it is a
  ``>>>`` transcript; a transcript belongs to the last Python block above it.
  """
  found: list[Example] = []
  previous = None
  for block in code_blocks(page):
    if block.language in PYTHON:
      found.append(Example(block, None, ()))
    elif block.language == TEXT and found:
      last = found[-1]
      if PROMPT.search(block.code):
        found[-1] = dataclasses.replace(
          last, transcripts=(*last.transcripts, block)
        )
      elif block.after_code and previous == last.block:
        found[-1] = dataclasses.replace(last, output=block)
    previous = block
  return found


def all_examples() -> list:
  """One pytest param per Python block of every page, named page:line."""
  return [
    pytest.param(example, id=example.block.where)
    for page in PAGES
    for example in examples(page)
  ]


def compile_block(block: Block) -> object:
  """Compiles a block so that tracebacks name its page and line."""
  padded = "\n" * (block.line - 1) + block.code
  return compile(padded, str(block.page), "exec")


def check_output(expected: Block, printed: str) -> None:
  """Fails unless ``printed`` matches the ``expected`` output block."""
  checker = doctest.OutputChecker()
  if not checker.check_output(expected.code, printed, DOCTEST_FLAGS):
    difference = checker.output_difference(
      doctest.Example("", expected.code), printed, DOCTEST_FLAGS
    )
    pytest.fail(f"{expected.where}: {difference}", pytrace=False)


def run_transcript(transcript: Block, namespace: dict) -> None:
  """Runs a ``>>>`` transcript as a doctest in ``namespace``."""
  test = doctest.DocTestParser().get_doctest(
    transcript.code,
    namespace,
    transcript.where,
    str(transcript.page),
    transcript.line - 1,
  )
  report: list[str] = []
  runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
  runner.run(test, out=report.append, clear_globs=False)
  if runner.failures:
    pytest.fail("".join(report), pytrace=False)


class ClassicPrompt(code.InteractiveConsole):
  """The classic ``python`` prompt, keeping the errors it would show."""

  def __init__(self) -> None:
    super().__init__(filename="<stdin>")
    self.errors: list[str] = []

  def showsyntaxerror(self, *args, **kwargs) -> None:
    del args, kwargs
    self.errors.append(traceback.format_exc())

  def showtraceback(self) -> None:
    self.errors.append(traceback.format_exc())


@pytest.fixture
def empty_dirs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch):
  """An empty working and temporary directory, which must stay empty."""
  work, scratch = tmp_path / "cwd", tmp_path / "tmp"
  work.mkdir()
  scratch.mkdir()
  monkeypatch.chdir(work)
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  yield
  leftovers = [*work.iterdir(), *scratch.iterdir()]
  assert not leftovers, f"the block left files behind: {leftovers}"


@pytest.mark.optax_not_strict  # blocks run as users run them
@pytest.mark.usefixtures("empty_dirs")
@pytest.mark.parametrize("example", all_examples())
def test_python_block_runs_as_a_script(
  example: Example, capsys: pytest.CaptureFixture
):
  namespace: dict = {"__name__": "__main__"}
  capsys.readouterr()
  exec(compile_block(example.block), namespace)
  printed = capsys.readouterr().out
  if example.output is not None:
    check_output(example.output, printed)
  for transcript in example.transcripts:
    run_transcript(transcript, namespace)


@pytest.mark.optax_not_strict
@pytest.mark.usefixtures("empty_dirs")
@pytest.mark.parametrize("example", all_examples())
def test_python_block_pastes_into_the_prompt(example: Example):
  prompt = ClassicPrompt()
  for line in [*example.block.code.splitlines(), ""]:  # "": the last Enter
    prompt.push(line)
  assert not prompt.errors, (
    f"{example.block.where} fails when pasted into the python prompt:\n"
    + "".join(prompt.errors)
  )


def module_exists(module: str) -> bool:
  """Whether ``python -m module`` finds it: in this repository, or installed.

  Run from the repository's root, ``examples.small_batch`` is the file
  ``examples/small_batch.py``; a tool such as ``build`` is installed.
  """
  path = ROOT.joinpath(*module.split("."))
  if path.with_suffix(".py").is_file() or (path / "__main__.py").is_file():
    return True
  return "." not in module and importlib.util.find_spec(module) is not None


def check_shell(block: Block) -> None:
  """Checks that a shell block's make targets, scripts and modules exist."""
  makefile = (ROOT / "Makefile").read_text()
  targets = set(re.findall(r"^([\w.-]+):", makefile, re.MULTILINE))
  for command in block.code.splitlines():
    words = shlex.split(command, comments=True)
    if words[:1] == ["make"]:
      for target in words[1:]:
        assert target in targets, f"{block.where}: no Makefile target {target}"
    for word, following in zip(words, words[1:]):
      if word == "-m":
        assert module_exists(following), f"{block.where}: no module {following}"
    for word in words:
      if word.endswith(".py"):
        assert (ROOT / word).is_file(), f"{block.where}: {word} does not exist"


def check_text(block: Block, attached: set[Block]) -> None:
  """Checks that a ``text`` block is an output or a transcript that runs."""
  if PROMPT.search(block.code):
    why = "a >>> transcript runs after a Python block above it on the page"
  else:
    why = "a text block is the output of the Python block right above it"
  assert block in attached, f"{block.where}: {why}, and there is none"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_runs_or_is_checked(page: pathlib.Path):
  attached = {
    block
    for example in examples(page)
    for block in (example.output, *example.transcripts)
    if block is not None
  }
  for block in code_blocks(page):
    if block.language in PYTHON:
      assert not PROMPT.search(block.code), (
        f"{block.where}: >>> prompts do not paste into python; write the"
        " code plainly, and what it prints in a text block right after it"
      )
    elif block.language in SHELL:
      check_shell(block)
    elif block.language == TEXT:
      check_text(block, attached)
    else:
      pytest.fail(
        f"{block.where}: a code block needs a language: python (it runs in"
        " the tests), sh (its commands are checked) or text (a Python"
        f" block's output or a >>> transcript), not {block.language!r}",
        pytrace=False,
      )
