"""Training pieces shared by the DPO and SFT stages: LoRA settings, trainer arguments, health gates,
checkpoint verification."""
