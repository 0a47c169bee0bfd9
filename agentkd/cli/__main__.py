"""`python -m agentkd.cli`: the same as the `agentkd` command."""

from agentkd.cli import main

main()
