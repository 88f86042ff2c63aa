"""`python train.py ...` is `clipswap train ...` (the same click command)."""

from clipswap.commands.train import train

if __name__ == "__main__":
    train()
