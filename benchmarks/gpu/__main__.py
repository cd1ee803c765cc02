"""``python -m benchmarks.gpu``: the GPU check (the package's docstring says what it measures)."""

from benchmarks.gpu.run import main

main()
