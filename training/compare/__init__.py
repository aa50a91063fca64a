"""`ranker compare SPEC`: does multi-task help? The spec's model against one single-task model per task
(and, with --pairs, every pair of tasks), seed by seed, on the spec's own split (Caruana 1997).

    variants.py  which models are trained: the spec's, one per single-task target, the pairs; their specs
    runs.py      the runs (variant x seed) in the order that gives a usable matrix first, in processes, in budget
    stats.py     paired gains, direction-aware, and the verdict (helps / hurts / within noise); bench uses it too
    matrix.py    the help/hurt matrix: per task metric and variant, the paired gain over its single-task model
    render.py    the table, compare.md, compare.json and the heatmap
    cli.py       the command
"""
