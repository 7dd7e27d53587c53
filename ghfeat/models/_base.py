"""Config capture shared by every ghfeat module.

Every architecture class takes shapes and hyperparameters only (no paths, no URLs). Decorating its
``__init__`` with :func:`register_to_config` records the bound arguments as ``module.config`` (a
JSON-able dict), which is all :func:`ghfeat.save_model` needs to rebuild the module later.
"""
from __future__ import annotations

import functools
import inspect

MODULE_CLASSES: dict[str, type] = {}


def register_to_config(init):
    """Decorator for ``__init__``: store the call's arguments (defaults applied) in ``self.config``
    and register the class under its name so that saved folders can rebuild it."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        config = {}
        for key, value in list(bound.arguments.items())[1:]:
            if signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                config.update(value)
            else:
                config[key] = list(value) if isinstance(value, tuple) else value
        init(self, *args, **kwargs)
        self.config = config
    return wrapper


def register_module_class(cls):
    """Class decorator: make ``cls`` rebuildable from ``config.json`` by its name."""
    MODULE_CLASSES[cls.__name__] = cls
    return cls
