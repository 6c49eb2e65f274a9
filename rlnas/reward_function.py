"""Import a user's reward function by its path (``"package.module:name"``).

Apart from :mod:`rlnas.envs.reward`, which calls it, so that :mod:`rlnas.config` can check the path on load
without importing the environment.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable


@functools.cache
def import_reward_function(path: str) -> Callable[..., float]:
    """The function named by ``"package.module:name"``."""
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{path!r} is not of the form 'package.module:function'")
    function = getattr(importlib.import_module(module), name)
    if not callable(function):
        raise ValueError(f"{path!r} is not callable")
    return function
