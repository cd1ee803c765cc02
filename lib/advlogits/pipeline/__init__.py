"""The pipeline: the book's models and measurements, each computed once and stored.

* `stored`: "the model of this config, trained on a miss", its evaluation and logits, the teachers' logits;
  it declares which source code enters a model's and a result's store key;
* `training`, `measures` and `masking`: the pure computations behind them (no store);
* `lineup`: the book's models by name.

Examples::

    from advlogits import pipeline, profiles
    profile = profiles.resolve("smoke")
    model, history = pipeline.get_model(profile.adversarial())
"""

from __future__ import annotations

from .stored import (
    describe,
    eval_logits,
    eval_split,
    evaluate,
    gap_gradients,
    get_model,
    has_model,
    linear_check,
    margin_drops,
    masking_checks,
    model_key,
    robustbench_logits,
    train_logits,
)

__all__ = [
    "describe",
    "eval_logits",
    "eval_split",
    "evaluate",
    "gap_gradients",
    "get_model",
    "has_model",
    "linear_check",
    "margin_drops",
    "masking_checks",
    "model_key",
    "robustbench_logits",
    "train_logits",
]
