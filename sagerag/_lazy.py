"""Package names that load on first use (PEP 562 module `__getattr__`), one implementation for every package.

`import sagerag` or `import sagerag.local` must stay cheap: the CLI imports them on every command, and the
names they export pull in LangChain, boto3, torch or the emulators' servers. A package lists which module
defines each exported name; the first access imports that module and caches the value in the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for a package whose `globals()` is `namespace`; `where`: name -> module."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", where))

    return __getattr__, __dir__
