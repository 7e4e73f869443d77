"""Every public function's numpy-style docstring examples run, and at least some are found."""

import doctest
import importlib
import pkgutil

import pytest

import helpers

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(helpers.__path__, "helpers.")
    if m.name not in {"helpers.__main__"}
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, module_name) if t.examples]
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def test_public_functions_have_examples():
    """Each public function and class exported by the package shows at least one runnable example."""
    missing = []
    for name in helpers.__all__:
        obj = getattr(helpers, name)
        if not callable(obj) or isinstance(obj, type) and issubclass(obj, Warning | Exception):
            continue
        doc = obj.__doc__ or ""
        if ">>>" not in doc and not isinstance(obj, type):
            missing.append(name)
    assert not missing, f"public functions without a docstring example: {missing}"
