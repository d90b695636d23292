"""What cnnkeras needs of its libraries beyond their public APIs: one module per library.

Each module names the private attributes it relies on in ``REQUIRES``, written for the
versions pinned in ``pyproject.toml``; ``tests/unit/test_adapters.py`` checks every one of
them on the installed versions, so an upgrade that renames one fails a test that says
which name broke, instead of a run deep inside a sweep.
"""
