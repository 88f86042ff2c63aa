"""Training losses, one family a module; each is a pure function of tensors (see composite.py for the total)."""
