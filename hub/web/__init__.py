"""The web interface: static pages, their vendored assets (assets.py) and the build hook."""
