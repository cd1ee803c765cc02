"""advlogits: the library behind the executable book on the logit distributions of adversarially-trained networks.

The names a reader needs first: a profile (`resolve`), the pipeline's models and measurements (`get_model`,
`evaluate`, `eval_logits`), the attack (`pgd`) and the per-image statistics (`max_logit`, `logit_gap`,
`confidence`). The layers, bottom to top: basics (`checks`, `fileio`, `accel`, `paths`, `buildfiles`), concepts
(`data`, `models`, `attacks`, `distill`, `logits`, `margins`, `stats`, `store`), `train` and `profiles`, the
`pipeline`, the chapters' own code (`advlogits.chapters`), the release tools (`advlogits.release`) and the command
line (`advlogits.cli`), each importing only from the layers below it.

Examples::

    from advlogits import get_model, resolve
    model, history = get_model(resolve("smoke").adversarial())
"""

from .attacks import pgd
from .logits import confidence, logit_gap, max_logit
from .pipeline import eval_logits, evaluate, get_model
from .profiles import resolve
from .store import Store

__version__ = "0.1.0"

__all__ = ["Store", "confidence", "eval_logits", "evaluate", "get_model", "logit_gap", "max_logit", "pgd", "resolve"]
