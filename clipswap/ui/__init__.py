"""The browser UI (`clipswap ui`): a Gradio page over the same swap pipeline the command line runs.

models.py keeps the loaded models of the process, faces.py finds the faces a user chooses from, jobs.py turns the
page's choices into the CLI's SwapRequest and runs it, live.py swaps webcam frames, app.py lays out the page. Only
app.py imports Gradio."""
