"""Face-data preparation: `clipswap align` (aligned crops in TFRecord shards: align_dataset, shards) and
`clipswap pairs` (training pairs with a landmark-swap teacher and a held-out set: pairs). Training reads what these
write (clipswap.training.data)."""
