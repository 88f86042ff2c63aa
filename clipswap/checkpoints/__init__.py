"""Reading the published Keras 2 .h5 checkpoints and writing/reading our own format."""
