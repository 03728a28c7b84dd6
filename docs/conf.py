"""Sphinx configuration of the funcnet documentation.

Build it with ``python -m sphinx -W --keep-going -b html docs build/docs``
(the ``docs`` extra installs what it needs). The build is offline: MathJax
comes from the ``sphinx-mathjax-offline`` package and is copied into
``_static/``, so formulas typeset without a network.
"""

import ast
import functools
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import funcnet  # noqa: E402

project = "funcnet"
author = "the funcnet authors"
copyright = "the funcnet authors"  # noqa: A001 (Sphinx's name)
version = release = funcnet.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",
]

# Pages are Markdown (MyST); $...$ and $$...$$ are math.
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "README.md"]

# The reference is written by hand per module (docs/api/), one directive a
# public name, so that tests/test_docs.py can hold it to each __all__.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Broken references inside funcnet fail the build; names outside it (jax,
# optax, numpy, the standard library) have no inventory offline.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jaxlib|optax|chex|numpy|np|jnp|typing|collections)(\..*)?"),
    (r"py:.*", r"(Array|ArrayLike|DType|PRNGKey|Params|Grads|OptState|State)"),
    (r"py:.*", r"(Residuals|Scalar|ScalarOrSchedule|Schedule|Shape)"),
    (r"py:.*", r"(Callable|Any|Mapping|Sequence|NamedTuple|Path|pathlib\..*)"),
    (r"py:.*", r"(int|float|str|bool|dict|list|tuple|None|object|type)"),
    (r"py:.*", r"(optional|callable|array|pytree|os|os\..*)"),
    # optax's own docstrings, shown for its re-exported chain and friends.
    (r"py:.*", r"(ArrayTree|GradientTransformation.*|Updates|EmptyState)"),
]

html_theme = "furo"
html_title = f"funcnet {release}"
html_static_path = ["_static"]
html_last_updated_fmt = None
pygments_style = "sphinx"

# MathJax 3 with SVG output: no web fonts to fetch, so a page opened from
# file:// typesets the same as one served over HTTP.
mathjax3_config = {"tex": {"tags": "none"}}


# viewcode gives functions and classes a [source] link, not module-level
# instances. The losses and activations are instances (``mse = Loss(...)``),
# and the derivation links each formula to one, so tag those too: from the
# private functions that only this instance uses, written just above it
# (``_mse``, ``_mse_grad``), to its docstring.


@functools.cache
def _source_and_tags(modname):
    from sphinx.pycode import ModuleAnalyzer

    analyzer = ModuleAnalyzer.for_module(modname)
    tags = dict(analyzer.find_tags())
    body = ast.parse(analyzer.code).body
    uses = {}  # private function -> the assignments that name it
    for i, node in enumerate(body):
        if isinstance(node, ast.Assign):
            for name in ast.walk(node.value):
                if isinstance(name, ast.Name) and name.id.startswith("_"):
                    uses.setdefault(name.id, set()).add(i)
    for i, node in enumerate(body):
        if not (isinstance(node, ast.Assign) and i + 1 < len(body)):
            continue
        doc = body[i + 1]
        if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)):
            continue
        start = i
        while (
            start > 0
            and isinstance(body[start - 1], ast.FunctionDef)
            and uses.get(body[start - 1].name) == {i}
        ):
            start -= 1
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id not in tags:
                tags[target.id] = ("other", body[start].lineno, doc.end_lineno)
    return analyzer.code, tags


def _find_source(app, modname):
    if modname == "funcnet" or modname.startswith("funcnet."):
        return _source_and_tags(modname)
    return None


def _follow_imported(app, modname, fullname):
    # A documented instance lives where it is assigned, whatever its class.
    if modname and modname.startswith("funcnet"):
        _, tags = _source_and_tags(modname)
        if tags.get(fullname, ("",))[0] == "other":
            return modname
    return None


def setup(app):
    # Runs after the extensions' own setup: sphinx-mathjax-offline points at
    # its CHTML build, and we want its SVG one.
    app.config.mathjax_path = "mathjax/tex-svg.js"
    app.connect("viewcode-find-source", _find_source)
    app.connect("viewcode-follow-imported", _follow_imported)
