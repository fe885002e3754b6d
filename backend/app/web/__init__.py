"""The chat page: static HTML, CSS and ES modules in `static/`, served by `app/api/web.py`."""
