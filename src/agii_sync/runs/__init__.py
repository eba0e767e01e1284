"""One module per command: the pipeline of engine.py with that command's plan."""
