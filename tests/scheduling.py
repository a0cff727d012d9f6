"""How `make test` shares the suite among pytest-xdist workers.

``--dist loadfile``, except that the browser modules are one unit of work: one worker
runs them one after another. Two Chromium scenario runs at once on two cores took up to
twice as long each, and starved calls timed out.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

# Modules under these directories are one unit of work: one worker, one after another.
ONE_UNIT_DIRS = ("tests/web/",)


class OneWorkerForTheBrowser(LoadFileScheduling):
    def _split_scope(self, nodeid: str) -> str:
        module = super()._split_scope(nodeid)
        return ONE_UNIT_DIRS[0] if module.startswith(ONE_UNIT_DIRS) else module
