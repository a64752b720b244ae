"""`python -m bigbilbao.cli`: the same as the `bigbilbao` console script."""

from bigbilbao.cli.app import console

console()
