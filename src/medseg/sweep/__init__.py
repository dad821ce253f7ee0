"""Sweeps over methods × labelled shares × seeds, for `medseg budget` and every benchmark: the command line, the
points and their configs, the resumable run, one JSON line per point with the machine it ran on, and the tables and
plots made from those lines.

    arguments  `medseg budget`'s command line
    plan       the points, each point's split file and config
    run        the resumable sweep (`run_budget`) and the row of one finished point
    rows       results files of JSON lines: read, record (with the machine's provenance), replace by key
    stats      mean ± sd over seeds, paired per-seed margins, a table's cells
    tables     the per-method table with paired margins, the label-budget curve, selection against random draws
    markdown   markdown tables, regenerated in place between markers of a file such as RESULTS.md
    summary    one sweep's budget.csv, budget.md, budget.png and report.html
    timing     medians of repeated calls, FLOPs, the machine's matmul ceiling
    step_speed one training step of a method as the trainer takes it, timed on a synthetic batch
"""
