"""One click command a file; clipswap/cli.py assembles them into the `clipswap` group."""
