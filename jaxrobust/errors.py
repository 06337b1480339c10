"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class JaxRobustError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The CLI prints ``error: <message>`` and exits with status 2; library users catch it like any
    exception. Internal bugs are left as ordinary exceptions so they keep their tracebacks.
    """


class HubUnreachable(JaxRobustError):
    """A model or dataset needs the Hugging Face hub, which cannot be reached, and is not cached."""
