"""Robustness evaluation: does the persona hold when someone pushes? (paper-method 2.2-2.4)

Modules: `suffixes` (the "stop role-playing" variants), `prefill` (turn 1 by the base model),
`drift` (a neutral multi-turn conversation), `classifier` (persona vs base, held-out split),
`scoring` (macro-F1, accuracy, persona share, bootstrap intervals), `replies` (resumable generation),
`suite` (the evaluation end to end), `stage` (the eval stage's hook: DPO-only vs full), `plots`
(the run report's section).

`character eval robustness --checkpoint C --persona P` runs it on demand; the pipeline's eval stage
writes `eval/robustness.json` for the final and the DPO-only model.
"""
