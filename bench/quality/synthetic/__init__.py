"""Ma et al. (KDD 2018), section 3.2 / 4.3: MMoE vs OMoE vs shared-bottom as task correlation falls.

Generator (their steps 1-5): x ~ N(0, I_d); orthonormal u1, u2; w1 = c u1,
w2 = c (p u1 + sqrt(1 - p^2) u2); y_t = w_t^T x + sum_{i=1..m} sin(alpha_i w_t^T x + beta_i) + eps_t,
alpha_i, beta_i ~ N(0, 1) shared by both tasks, eps_t ~ N(0, 0.01) read as variance 0.01 (std 0.1).
Every run draws new u1, u2, alpha, beta, data and model initialization; within a run every model
sees the same data, and every p reuses the run's draw (only p differs), so the effect of p is
measured run by run. The models are training/modeling/model.py's MMoE (arch mmoe / omoe) and SharedBottom on
dense-only inputs (no categorical features), so this tests our implementation, not a copy.

    .venv/bin/python -m bench.quality.synthetic                # full: 30 runs x 3 correlations x 4 models
    .venv/bin/python -m bench.quality.synthetic --smoke        # seconds; writes to a temp dir
    .venv/bin/python -m bench.quality.synthetic --replot       # re-render the section from the saved runs

A run saves its runs (results/synthetic.json) and rewrites the section from that file. The sensitivity
check (harder functions, less and more data) is retired: docs/BENCHMARKS.md keeps its table and the
command at its commit.

The package by job: config (settings, models), data (the generator), models (model
arguments, parameter-matched shared-bottom), runs (training, the pool of runs), stats (paired
changes, sign tests), verdict (the computed claims), markdown and plots (the section), cli (flags).
"""
