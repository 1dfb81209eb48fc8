"""`python -m <package>` runs the competition CLI."""

from .cli import main

main()
