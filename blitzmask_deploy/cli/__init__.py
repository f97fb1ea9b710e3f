"""The `blitzmask` command line: one thin module per command group (see app.py)."""
