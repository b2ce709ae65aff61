"""One module per CLI subcommand (see pylogmap.cli.COMMANDS).

Each module has a docstring (the command's --help description), `add_arguments(parser)` and
`run(args) -> int`. Modules import heavy libraries (torch, transformers, faiss, Qt) inside
`run`, never at import time.
"""
