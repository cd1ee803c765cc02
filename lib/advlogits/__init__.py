"""advlogits: the library behind the executable book on the logit distributions of adversarially-trained networks.

The names a reader needs first: a profile (`resolve`), the pipeline's models and measurements (`get_model`,
`evaluate`, `eval_logits`), the attack (`pgd`) and the per-image statistics (`max_logit`, `logit_gap`,
`confidence`). The layers, bottom to top: basics (`checks`, `fileio`, `accel`, `paths`, `buildfiles`), concepts
(`data`, `models`, `predict`, `attacks`, `evaluation`, `autoattack`, `distill`, `logits`, `margins`, `stats`,
`store`), `train` and `profiles`, the `pipeline`, the chapters' own code (`advlogits.chapters`), the release tools
(`advlogits.release`) and the command line (`advlogits.cli`), each importing only from the layers below it.

Examples::

    from advlogits import get_model, resolve
    model, history = get_model(resolve("smoke").adversarial())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .attacks import pgd
    from .logits import confidence, logit_gap, max_logit
    from .pipeline import eval_logits, evaluate, get_model
    from .profiles import resolve
    from .store import Store

__version__ = "0.1.0"
__all__ = ["Store", "confidence", "eval_logits", "evaluate", "get_model", "logit_gap", "max_logit", "pgd", "resolve"]

# The names of __all__, each imported from its module when first asked for: `import advlogits` (which the command line's
# `advlogits --help` does) imports no torch.
_WHERE = {
    "Store": ".store",
    "confidence": ".logits",
    "eval_logits": ".pipeline",
    "evaluate": ".pipeline",
    "get_model": ".pipeline",
    "logit_gap": ".logits",
    "max_logit": ".logits",
    "pgd": ".attacks",
    "resolve": ".profiles",
}


def __getattr__(name: str) -> Any:
    """``advlogits.get_model`` and the other names of `__all__`, imported on first use (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'advlogits' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
