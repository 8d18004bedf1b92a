"""Reading the config a checkpoint stores (``meta['cfg']``) as data, without executing it.

mmengine runners save ``cfg.pretty_text`` in every checkpoint. ``Config.fromstring`` would *execute* that text as
Python (and import its ``custom_imports``, e.g. the ``mmselfsup`` modules of published OpenMMLab files), so a crafted
checkpoint could run code although its weights are read weights-only. A stored config is a list of literal
assignments (``model = dict(type='SimCLR', ...)``), which :mod:`ast` reads safely: only literals, tuples, lists,
dicts and ``dict(k=v, ...)`` calls are accepted; nothing in the text is ever run or imported.
"""
import ast
from typing import Dict

from mmengine.config import Config


def _literal(node: ast.AST):
    """Value of a literal expression, ``dict(k=v, ...)`` calls included; anything else raises ValueError."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args \
            and all(kw.arg is not None for kw in node.keywords):
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    return ast.literal_eval(node)


def config_entries_from_text(text: str) -> Dict[str, object]:
    """``{name: value}`` of the top-level ``name = <literal>`` assignments of a stored config text.

    Statements that are not literal assignments (imports, calls, expressions a hand-written config may hold) are
    skipped, never executed.

    Raises:
        SyntaxError: the text is not Python.
    """
    entries = {}
    for stmt in ast.parse(text).body:
        if not isinstance(stmt, ast.Assign):
            continue
        try:
            value = _literal(stmt.value)
        except ValueError:  # code, not data: left out
            continue
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                entries[target.id] = value
    return entries


def model_config_from_text(text: str) -> dict:
    """The ``model = ...`` entry of a stored config text, read without executing it.

    Raises:
        SyntaxError: the text is not Python.
        ValueError: there is no literal ``model = dict(...)`` entry (missing, or computed by code).
    """
    model = config_entries_from_text(text).get('model')
    if model is None:
        raise ValueError('no literal "model = ..." entry')
    if not isinstance(model, dict):
        raise ValueError('"model" is not a dict')
    return model


def config_from_text(text: str) -> Config:
    """A ``Config`` of the literal entries of a stored config text (see :func:`config_entries_from_text`), with at
    least a ``model`` dict; the text is never executed.

    Raises:
        SyntaxError, ValueError: as :func:`model_config_from_text`.
    """
    model_config_from_text(text)
    return Config(config_entries_from_text(text))
