"""character: train a persona into a language model, the Open Character Training way.

constitution -> DPO distillation -> introspection data -> SFT -> exact merge -> evaluation.
See README.md for the two commands (`make demo`, `make test`) and DESIGN notes in docs.
"""

__version__ = "0.1.0"
