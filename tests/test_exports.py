"""The packages' lazy re-exports (``ghfeat._lazy``): every public name resolves to the object its
module defines, and ``import ghfeat`` does not import torch."""
import importlib
import subprocess
import sys

import pytest

PACKAGES = ["ghfeat", "ghfeat.eval", "ghfeat.train", "ghfeat.convert"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_resolves_to_its_definition(package):
    pkg = importlib.import_module(package)
    exports = pkg._EXPORTS
    assert sorted(exports) == sorted(n for n in pkg.__all__ if n != "__version__")
    for name, module in exports.items():
        defined = getattr(importlib.import_module(module, package), name)
        assert getattr(pkg, name) is defined, f"{package}.{name}"
        assert name in dir(pkg)


@pytest.mark.parametrize("package", PACKAGES)
def test_unknown_name_is_an_attribute_error_naming_the_package(package):
    pkg = importlib.import_module(package)
    with pytest.raises(AttributeError, match=rf"module '{package}' has no attribute 'no_such_name'"):
        pkg.no_such_name  # noqa: B018
    assert not hasattr(pkg, "no_such_name")


def test_import_ghfeat_does_not_import_torch():
    code = "import sys, ghfeat; ghfeat.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
