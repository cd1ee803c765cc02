"""Names the command line offers before it imports anything heavy: the profiles and the plan's executors.

`advlogits --help`, a verb's ``--help`` and an argument error list these choices without importing torch (about
2 s of a 2 s answer); `advlogits.profiles` and `advlogits.pipeline.executors` read them from here, so there is one
list of each.
"""

from __future__ import annotations

PROFILES: tuple[str, ...] = ("smoke", "cpu", "decisive", "paper")  # the order errors list them
EXECUTORS: tuple[str, ...] = ("serial", "local", "ray")
