"""The release tools: what `make` runs to publish a build, not what a chapter computes.

* `record`: a build's scorecard and environment recorded in ``results/<profile>/`` (`make results`);
* `readme_table`: the README's "Results at a glance" table, rendered from that record;
* `citation`: the README's "How to cite" section, rendered from ``CITATION.cff`` (`make cite`);
* `readme`: the README's generated blocks, each rewritten between its markers only;
* `editions`: the student edition, the chapters without the exercises' solutions (`make book STUDENT=1`);
* `launch`: the repository's address in the chapters' Colab cell (`make repository`).

They sit above the chapters (the README's table is formatted as the scorecard chapter formats it); nothing in
the library imports them.
"""
