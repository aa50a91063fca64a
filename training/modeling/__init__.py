"""The torch model and what trains it.

    args.py           ModelArgs: what every model is built from (the manifest's model_args)
    modules.py        building blocks: FeatureInput, MLP, Tower, Gate (expert dropout)
    model.py          MMoE / OMoE / shared-bottom / single-task; which parameters belong to one task
    ple.py            CGC and PLE (task-specific and shared experts, per level)
    losses.py         masked per-task losses; fixed, uncertainty and GradNorm balancing
    grad_conflict.py  PCGrad and MGDA-UB
    bias_tower.py     the training-only position-bias tower (never exported; its inputs: data/bias_inputs.py)
"""
