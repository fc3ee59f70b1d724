"""`python -m elshi.cli`: the same as the `elshi` script."""

from elshi.cli.root import main

main()
