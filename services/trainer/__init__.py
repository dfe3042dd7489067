"""The trainer: turns each announced dataset batch into a new LoRA version of the model line,
evaluates it against the current release and proposes it when the gate passes (see README.md
in this folder)."""
