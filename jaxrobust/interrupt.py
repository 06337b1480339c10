"""Ctrl-C that always stops a command, with status 130 and no half-written report.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT arrives. Inside JAX that is
unsafe: JAX calls Python from C++ (its garbage-collection hook ``_xla_gc_callback``, pytree
flattening, ...), where the exception is printed as "Exception ignored" and dropped -- the attack
then ran to the end -- as it is inside a finalizer (``__del__``, which the garbage collector runs
wherever it runs), and some libraries catch it while they import. So the handler that
:func:`handle_sigint` installs records the request and raises only while no JAX frame and no
finalizer is on the main thread's stack; until the command has stopped, a helper thread
re-delivers the interrupt (``_thread.interrupt_main``: the Python handler again, no OS signal) so
that it is raised at the first safe point (outside JAX and finalizers, and not while an exception
is being handled), or again if something swallowed it. Device loops call :func:`check` between batches, and :func:`deferred` holds an
interrupt while a report's files are written.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading

_requested = threading.Event()  # Ctrl-C was pressed during the command
_stopped = threading.Event()  # the command is over: late re-deliveries are ignored
_raised = threading.Event()  # the handler raised at least once (re-deliver more slowly)
_holding = 0  # > 0 inside deferred()
_redeliverer: threading.Thread | None = None
_UNSAFE = ("jax", "jaxlib")  # packages whose frames must not see the exception


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed (a no-op without :func:`handle_sigint`)."""
    if _requested.is_set() and not _stopped.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred():
    """Hold Ctrl-C while the (short) body runs, e.g. writing a report's files; raise it afterwards."""
    global _holding
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
    check()


def _unsafe(frame) -> bool:
    """Whether an exception raised in ``frame`` could be dropped: inside JAX or a finalizer."""
    while frame is not None:
        if frame.f_code.co_name == "__del__" or frame.f_globals.get("__name__", "").partition(".")[0] in _UNSAFE:
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum, frame) -> None:
    global _redeliverer
    if _stopped.is_set():
        return
    if not _requested.is_set():
        _requested.set()
        _redeliverer = threading.Thread(target=_redeliver, name="sigint-redeliver", daemon=True)
        _redeliverer.start()
    # Not inside JAX or a finalizer, nor while a report is written, nor in code handling an exception
    # (cleanup on the way out, this module's own included): raised at the next safe point instead.
    if _holding or sys.exc_info()[1] is not None or _unsafe(frame):
        return
    _raised.set()
    raise KeyboardInterrupt


def _redeliver() -> None:
    # Soon while the interrupt is pending; after it was raised, only if the command goes on anyway
    # (slowly, so that cleanup code on the way out is not interrupted a second time).
    while not _stopped.wait(1.0 if _raised.is_set() else 0.1):
        _thread.interrupt_main(signal.SIGINT)


@contextlib.contextmanager
def handle_sigint():
    """Run the body with the handler above; if Ctrl-C was pressed, leave with KeyboardInterrupt,
    whatever the body did (returned, raised, or had the interrupt swallowed)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread only
        return
    global _redeliverer
    _requested.clear()
    _stopped.clear()
    _raised.clear()
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    except BaseException:
        if not _requested.is_set():
            raise
    finally:
        _stopped.set()
        if _redeliverer is not None:
            _redeliverer.join()
            _redeliverer = None
        # signal.signal runs pending handlers first: a last re-delivery reaches _on_sigint, which ignores it.
        signal.signal(signal.SIGINT, previous)
    if _requested.is_set():
        raise KeyboardInterrupt
