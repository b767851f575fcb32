"""Developer tools that are not part of the ``netkit`` command: generators for committed files.

``python -m netkit.devtools.gendocs`` rewrites ``completions/`` and ``man/`` from the Click
definitions (``--check`` only compares). Nothing here is imported by the CLI at run time.
"""
