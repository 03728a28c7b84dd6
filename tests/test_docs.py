"""The documentation cannot rot: its code runs, its reference is complete, it builds.

* Every plain ```` ```python ```` block of a page under ``docs/`` (the API
  reference aside) runs, in page order, in one namespace per page, in a
  temporary working directory. A block that is not meant to run uses
  another fence, such as ```` ```text ```` or ```` ```{code-block} python ````.
* ``docs/api/`` documents exactly each public module's ``__all__``, one
  autodoc directive a name, and every public name of ``funcnet`` itself.
* The site builds with Sphinx, warnings as errors (skipped only where
  Sphinx and myst-parser are not installed; CI installs the ``docs`` extra).

Docstring examples are run by ``pytest --doctest-modules`` (pyproject.toml).
"""

import ast
import importlib
import inspect
import pathlib
import pkgutil
import re
import subprocess
import sys
import textwrap

import pytest

import funcnet

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
DIRECTIVE = re.compile(
    r"^\.\. auto(module|function|class|exception|data|attribute)::\s+(\S+)\s*$", re.M
)
TUTORIALS = {
    "derivation.md",
    "custom_layer.md",
    "tutorials/textbook.md",
    "tutorials/digits.md",
    "tutorials/sweep.md",
    "tutorials/migrating.md",
}


def pages():
    return sorted(
        str(p.relative_to(DOCS))
        for p in DOCS.rglob("*.md")
        if API not in p.parents and "_build" not in p.parts
    )


def python_blocks(path):
    """The page's ```python blocks, each padded so tracebacks give page lines."""
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        first_line = text.count("\n", 0, match.start(1))
        blocks.append("\n" * first_line + match.group(1))
    return blocks


# the pages' code


def test_the_tutorials_are_pages_with_code():
    found = set(pages())
    assert found >= TUTORIALS, f"missing pages: {sorted(TUTORIALS - found)}"
    for page in sorted(TUTORIALS):
        assert python_blocks(DOCS / page), f"{page} has no ```python block"


@pytest.mark.parametrize("page", [p for p in pages() if python_blocks(DOCS / p)])
def test_page_code_runs_as_written(page, tmp_path, monkeypatch, capsys):
    if page == "tutorials/sweep.md":
        pytest.importorskip("matplotlib", reason="the docs extra installs matplotlib")
    monkeypatch.chdir(tmp_path)  # pages write under runs/
    namespace = {"__name__": "__docs__"}
    for block in python_blocks(DOCS / page):
        exec(compile(block, str(DOCS / page), "exec"), namespace)
    out = capsys.readouterr().out
    if page == "tutorials/textbook.md":
        assert "-0.098439" in out and "0.7600   0.6814" in out


# the reference


def documented():
    """``{module: {names}}`` from the autodoc directives under docs/api/."""
    modules, names = set(), {}
    for path in sorted(API.glob("*.md")):
        for kind, target in DIRECTIVE.findall(path.read_text()):
            if kind == "module":
                modules.add(target)
            else:
                module, _, name = target.rpartition(".")
                names.setdefault(module, []).append(name)
    return modules, names


def public_modules():
    found = ["funcnet"]
    for info in pkgutil.walk_packages(funcnet.__path__, "funcnet."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def test_every_public_module_has_a_reference_page():
    modules, _ = documented()
    missing = sorted(set(public_modules()) - modules)
    assert not missing, f"add an automodule directive under docs/api/ for {missing}"


@pytest.mark.parametrize("module_name", [m for m in public_modules() if m != "funcnet"])
def test_reference_matches_all(module_name):
    module = importlib.import_module(module_name)
    modules, names = documented()
    entries = names.get(module_name, [])
    duplicates = sorted({n for n in entries if entries.count(n) > 1})
    assert not duplicates, f"{module_name}: documented twice: {duplicates}"

    public = set(module.__all__)
    submodules = {n for n in public if f"{module_name}.{n}" in set(public_modules())}
    missing = sorted(public - submodules - set(entries))
    extra = sorted(set(entries) - public)
    assert not missing, (
        f"{module_name}.__all__ names without a reference entry: {missing}"
    )
    assert not extra, f"reference entries not in {module_name}.__all__: {extra}"
    assert {f"{module_name}.{n}" for n in submodules} <= modules


def test_every_top_level_name_is_in_the_reference():
    modules, names = documented()
    index = (API / "index.md").read_text()
    for name in funcnet.__all__:
        assert f"`funcnet.{name}`" in index, f"list funcnet.{name} in docs/api/index.md"
        value = getattr(funcnet, name)
        if isinstance(value, type(funcnet)):
            assert value.__name__ in modules, f"{value.__name__} has no page"
            continue
        homes = [
            m
            for m, entries in names.items()
            if name in entries and getattr(importlib.import_module(m), name) is value
        ]
        assert homes, f"funcnet.{name} is not documented in the module it comes from"


# the build


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip(
        "sphinx", reason="install the docs extra: pip install -e '.[docs]'"
    )
    pytest.importorskip("myst_parser", reason="install the docs extra")
    out = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q"]
    command += ["-b", "html", "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    built = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr

    # Formulas typeset offline: the page loads a bundled MathJax, no CDN.
    page = (out / "derivation.html").read_text()
    assert 'src="_static/mathjax/tex-svg.js"' in page
    assert "https://" not in re.findall(r"<script[^>]*mathjax[^>]*>", page)[0]
    assert (out / "_static" / "mathjax" / "tex-svg.js").is_file()
    assert r"\delta_l" in page

    # Every documented name resolves to an entry of the built site.
    from sphinx.util.inventory import InventoryFile

    with open(out / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    objects = set().union(
        *(set(v) for k, v in inventory.items() if k.startswith("py:"))
    )
    _, names = documented()
    unresolved = sorted(
        f"{m}.{n}"
        for m, entries in names.items()
        for n in entries
        if f"{m}.{n}" not in objects
    )
    assert not unresolved, unresolved

    # The derivation's links land on entries with a [source] link, and those
    # of the losses and activations restate their formulas.
    entries = {}
    for html in (out / "api").glob("*.html"):
        text = html.read_text()
        for match in re.finditer(r'<dt[^>]* id="(funcnet\.[\w.]+)">', text):
            end = text.index("</dt>", match.end())
            body = text[end : text.find("</dd>", end)]
            entries[match.group(1)] = (text[match.end() : end], body)
    links = re.findall(r"\{(?:func|data|class|meth)\}`([^`]*)`", derivation_text())
    targets = {re.sub(r"^.*<|>$|^~", "", link) for link in links}
    assert len(targets) >= 20, sorted(targets)
    for target in sorted(targets):
        assert target in entries, f"the derivation links {target}, which has no entry"
        signature, body = entries[target]
        assert "viewcode-link" in signature, f"{target}'s entry has no [source] link"
        if re.match(r"funcnet\.(losses|activations)\.[a-z_]+$", target):
            assert 'class="math' in body, f"{target}'s entry shows no formula"


def derivation_text():
    return (DOCS / "derivation.md").read_text()


# the docstrings


def attribute_docstrings(module):
    """The names that ``module``'s own source gives a docstring.

    A string right after an assignment is what autodoc shows for a constant
    or an instance (``mse = Loss(...)``); ``__doc__`` cannot hold it.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(module)))
    body = tree.body[0].body if inspect.isclass(module) else tree.body
    names = set()
    for statement, following in zip(body, body[1:]):
        if not (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
            and following.value.value.strip()
        ):
            continue
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign):
            targets = [statement.target]
        else:
            continue
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def fields(cls):
    """The annotated fields a class declares in its own body."""
    return list(getattr(cls, "__annotations__", {}))


def _own_nodes(function_node):
    """The nodes of a function's body, not those of functions inside it."""
    stack = list(function_node.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
        ):
            stack.extend(ast.iter_child_nodes(node))


def returns_something(function):
    """Whether ``function`` has a ``return x`` or ``yield`` of its own and is
    not annotated ``-> None``."""
    if inspect.signature(function).return_annotation in (None, type(None)):
        return False
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):  # no Python source: assume it returns
        return True
    node = ast.parse(source).body[0]
    return any(
        isinstance(n, ast.Yield | ast.YieldFrom)
        or (isinstance(n, ast.Return) and n.value is not None)
        for n in _own_nodes(node)
    )


def function_problems(name, function):
    doc = inspect.getdoc(function) or ""
    takes = [
        p
        for p in inspect.signature(function).parameters.values()
        if p.name not in ("self", "cls")
    ]
    problems = []
    if not doc:
        problems.append(f"{name}: no docstring")
    if takes and "Args:" not in doc:
        problems.append(f"{name}: no Args: section")
    if returns_something(function) and not re.search(r"(Returns|Yields):", doc):
        problems.append(f"{name}: no Returns: section")
    return problems


def docstring_problems(module):
    """Each public name of ``module`` whose docstring lacks a section it needs."""
    constants = attribute_docstrings(module)
    problems = []
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue
        if inspect.isclass(value):
            doc = inspect.getdoc(value) or ""
            if not doc:
                problems.append(f"{name}: no docstring")
            elif issubclass(value, Exception):
                pass  # an exception's docstring says when it is raised
            elif "Attributes:" not in doc and "Args:" not in doc:
                undocumented = set(fields(value)) - attribute_docstrings(value)
                if undocumented or not fields(value):
                    problems.append(f"{name}: no Attributes: or Args: section")
        elif inspect.isroutine(value):
            problems += function_problems(name, value)
        elif name not in constants:
            problems.append(f"{name}: no docstring after its assignment")
    return problems


# The package itself only re-exports: each name is checked in its module.
@pytest.mark.parametrize("module_name", [m for m in public_modules() if m != "funcnet"])
def test_every_public_name_has_args_and_returns(module_name):
    module = importlib.import_module(module_name)
    problems = docstring_problems(module)
    assert not problems, f"{module_name}:\n  " + "\n  ".join(problems)


MEMBERS = re.compile(
    r"^\.\. auto(?:class|exception)::\s+(\S+)\s*\n((?:[ \t]+:.*\n)*)", re.M
)


def documented_methods():
    """``(class path, method)`` for the members the reference pages list."""
    found = []
    for path in sorted(API.glob("*.md")):
        for target, options in MEMBERS.findall(path.read_text()):
            for listed in re.findall(r":(?:special-)?members:\s*(.*)", options):
                found += [(target, m.strip()) for m in listed.split(",")]
    return found


def test_documented_methods_have_args_and_returns():
    problems = []
    for target, method in documented_methods():
        module_name, _, class_name = target.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        if isinstance(inspect.getattr_static(cls, method), property):
            if not inspect.getdoc(getattr(cls, method)):
                problems.append(f"{target}.{method}: no docstring")
            continue
        problems += function_problems(f"{target}.{method}", getattr(cls, method))
    assert not problems, "\n  ".join(["", *problems])
