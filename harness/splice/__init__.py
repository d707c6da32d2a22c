"""Splice backends: the kernel's own (native), the emulation, or a user's class.

Stdlib only: this package travels to the remote host with the agent.
"""

from __future__ import annotations

import importlib

from .api import Personality, Splicer, personality

BACKENDS = ("emulated", "native")


class BackendError(ValueError):
    """A backend name that cannot be loaded; the message is one line that says what is valid."""


def check_backend_name(name: str) -> None:
    if name in BACKENDS:
        return
    if ":" in name:
        module, _, cls = name.partition(":")
        if module and cls:
            return
    raise BackendError(
        f"unknown splice backend {name!r}; valid: {', '.join(BACKENDS)}, or module:Class"
    )


def check_backend_class(name: str) -> None:
    """For module:Class, import it now so that a typo is one line, not a failure per case."""
    check_backend_name(name)
    if name in BACKENDS:
        return
    module_name, _, cls_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise BackendError(f"splice backend {name!r}: cannot import {module_name}: {e}") from None
    if not isinstance(getattr(module, cls_name, None), type):
        raise BackendError(f"splice backend {name!r}: {module_name} has no class {cls_name}")


def load_splicer(name: str, personality_name: str = "openbsd") -> Splicer:
    """The splicer for a backend name and a personality name."""
    check_backend_name(name)
    try:
        pers: Personality = personality(personality_name)
    except ValueError as e:
        raise BackendError(str(e)) from None
    if name == "emulated":
        from .emulated import EmulatedSplicer

        return EmulatedSplicer(pers)
    if name == "native":
        from .native import BackendUnavailable, NativeSplicer

        try:
            return NativeSplicer()
        except BackendUnavailable as e:
            raise BackendError(str(e)) from None
    module_name, _, cls_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendError(f"splice backend {name!r}: cannot import {module_name}: {e}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise BackendError(f"splice backend {name!r}: {module_name} has no {cls_name}")
    splicer: Splicer = cls(pers)
    return splicer
