"""Web interface: pages, templates, static files, translations and shared view helpers."""
