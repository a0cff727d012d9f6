"""Run browser scenarios by name: ``python -m tests.web.scenarios mesh chat_reload``.

Meant to run inside a loopback-only network namespace (see ``tests/web/conftest.py``).
"""

from __future__ import annotations

import sys

from tests.web.harness import run_scenarios

if __name__ == "__main__":
    run_scenarios(sys.argv[1:])
