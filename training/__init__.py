"""Fine-tuning the code embedder: mining training triples (``build_data``) and training (``train``).

A script area, not part of the installed ``coderag_assets`` package: run its modules with
``python -m training.<module>`` from the repository root, with the ``training`` extra installed.
"""
