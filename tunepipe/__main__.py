"""`python -m tunepipe` runs the tunepipe command (same as the console script)."""

from tunepipe.cli import entry

entry()
