"""The chapters' own code: one module per chapter, the figure and table code they share, and the claims registry.

Only the notebooks (and tests) import this subpackage; nothing in the library below imports it, and none of it
enters a store key, so rewording a table or redrawing a figure never retrains a model.

* `standard_vs_adversarial` (chapter 1), `logit_distributions` (2), `sample_confidence` (3) and its `explorer`,
  `distillation` (4), `scorecard` (5);
* `claims`: the claims registry, each claim once with its criterion, thresholds and decision;
* `parameters`: the check each chapter runs first, refusing a papermill parameter it does not declare;
* `figures`, `tables`: what several chapters draw and tabulate.

Recording a build and the README's generated blocks are release tools (`advlogits.release`), not chapters' code.
"""
