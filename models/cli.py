"""How the ``python -m models.*`` tools end on an error: one line naming the problem and the fix.

The tools are run by people retraining on their own field images; a traceback tells them
nothing about their data. Every error the tools raise on purpose (:class:`DatasetError`,
:class:`agent.vision.ModelError`...) already says what is wrong and what to do; anything else is
still reported on one line, with the way to get the traceback (``REMOTAIR_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from agent.errors import ExitCode, RemotairError, describe_exception

DEBUG_VARIABLE = "REMOTAIR_DEBUG"


def run(main: Callable[[], int], prog: str) -> int:
    """Call ``main``; on an exception print ``PROG: error: ...`` to stderr, return its exit code."""
    try:
        return main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # `python -m models.foreign ... | head`: the reader left, as remotair
        sys.stderr.close()
        return int(ExitCode.OK)
    except Exception as exc:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        message, code = describe_exception(exc)
        first = " ".join(message.split())  # messages from libraries may span lines
        if not isinstance(exc, RemotairError):
            first += f" (unexpected; {DEBUG_VARIABLE}=1 shows the traceback)"
        print(f"{prog}: error: {first}", file=sys.stderr)
        return int(code)
