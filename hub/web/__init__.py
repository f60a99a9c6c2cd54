"""The web interface (static/) and the API docs' pages (apidocs/), their built assets
(assets.py; editor/entry.js, the CodeMirror bundle's entry) and the build hook.

May import: nothing (the build hook loads assets.py by path, before the package is
installed: the standard library only).
"""
