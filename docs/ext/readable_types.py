"""Prints optax_prox's annotations as its source writes them.

Evaluated, the aliases of optax and jax expand: ``optax.Params`` becomes
``jax.jaxlib._jax.Array | numpy.ndarray | numpy.bool | ...``, ``jax.Array``
becomes ``jax.jaxlib._jax.Array``, and a class of ours is named by the
private module that defines it (``optax_prox._proximal``). This extension
gives the signatures of optax_prox's functions and classes, and the types
of its state attributes, the annotations as the source spells them
(``optax.Params``, ``jax.Array``, ``optax.ScalarOrSchedule``), where a
public name of optax_prox is written as such: ``ProximalRegularizeState``,
linked to ``optax_prox.ProximalRegularizeState``.

Napoleon must not add the evaluated types of attributes itself
(``napoleon_attr_annotations = False`` in ``conf.py``): this extension gives
each ``.. attribute::`` its ``:type:`` instead.
"""

import ast
import dataclasses
import inspect
import re
import sys
import textwrap
from typing import Any

from sphinx.application import Sphinx

import optax_prox

PUBLIC_NAMES = {
  id(getattr(optax_prox, name)): f"optax_prox.{name}"
  for name in optax_prox.__all__
}
ATTRIBUTE = re.compile(r"\.\. attribute:: (\w+)")


def is_ours(obj: object) -> bool:
  """Whether ``obj`` is a function or class defined in optax_prox."""
  module = getattr(obj, "__module__", None) or ""
  return module.split(".")[0] == "optax_prox" and (
    inspect.isfunction(obj) or inspect.isclass(obj)
  )


def resolve(node: ast.expr, namespace: dict[str, Any]) -> object | None:
  """The object a name or dotted name refers to in ``namespace``, or None."""
  if isinstance(node, ast.Name):
    return namespace.get(node.id)
  if isinstance(node, ast.Attribute):
    base = resolve(node.value, namespace)
    return None if base is None else getattr(base, node.attr, None)
  return None


def written(annotation: ast.expr, namespace: dict[str, Any]) -> str:
  """An annotation's source text, with optax_prox's public names.

  ``namespace`` is the defining module's, where the annotation's names
  resolve; ``"~"`` makes Sphinx show the last part and link the whole name.
  """
  text = ast.unparse(annotation)
  for node in ast.walk(annotation):
    public = PUBLIC_NAMES.get(id(resolve(node, namespace)))
    if public is not None:
      source = re.escape(ast.unparse(node))
      text = re.sub(rf"(?<![\w.~]){source}(?!\w)", f"~{public}", text)
  return text


def written_annotations(obj: object) -> dict[str, str]:
  """The annotations of ``obj`` as written, with optax_prox's public names.

  A function's are those of its arguments and its return (``"return"``), a
  class's those of its fields.
  """
  node = ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0]
  if isinstance(node, ast.ClassDef):
    annotations = {
      statement.target.id: statement.annotation
      for statement in node.body
      if isinstance(statement, ast.AnnAssign)
      and isinstance(statement.target, ast.Name)
    }
  else:
    assert isinstance(node, ast.FunctionDef), node
    arguments = node.args
    annotations = {
      argument.arg: argument.annotation
      for argument in (
        *arguments.posonlyargs,
        *arguments.args,
        *arguments.kwonlyargs,
        arguments.vararg,
        arguments.kwarg,
      )
      if argument is not None and argument.annotation is not None
    }
    if node.returns is not None:
      annotations["return"] = node.returns
  namespace = vars(sys.modules[obj.__module__])
  return {
    name: written(annotation, namespace)
    for name, annotation in annotations.items()
  }


@dataclasses.dataclass(frozen=True)
class Written:
  """An annotation that ``inspect`` prints as the text it is given."""

  text: str

  def __repr__(self) -> str:
    """The text: ``inspect`` prints an annotation that is no type by it."""
    return self.text


def readable_signature(
  app: Sphinx,
  what: str,
  name: str,
  obj: object,
  options: object,
  signature: str | None,
  return_annotation: str | None,
) -> tuple[str, str | None] | None:
  """Rewrites the signature of a function or class of optax_prox."""
  del app, name, options, return_annotation
  if what not in ("function", "class") or not is_ours(obj) or not signature:
    return None
  annotations = written_annotations(obj)
  parameters = [
    parameter.replace(
      annotation=Written(annotations[parameter.name])
      if parameter.name in annotations
      else inspect.Parameter.empty
    )
    for parameter in inspect.signature(obj).parameters.values()
  ]
  without_return = inspect.Signature(parameters)
  return str(without_return), annotations.get("return")


def attribute_types(
  app: Sphinx,
  what: str,
  name: str,
  obj: object,
  options: object,
  lines: list[str],
) -> None:
  """Gives each ``.. attribute::`` of a class of ours its written type."""
  del app, name, options
  if what != "class" or not is_ours(obj):
    return
  annotations = written_annotations(obj)
  typed = []
  for line in lines:
    typed.append(line)
    match = ATTRIBUTE.fullmatch(line)
    if match and match.group(1) in annotations:
      typed.append(f"   :type: {annotations[match.group(1)]}")
  lines[:] = typed


def setup(app: Sphinx) -> dict[str, Any]:
  """Connects both hooks; the docstring one after napoleon's."""
  app.connect("autodoc-process-signature", readable_signature)
  app.connect("autodoc-process-docstring", attribute_types, priority=600)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
