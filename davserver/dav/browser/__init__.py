"""drivegate's folder page: the template, style and logo WsgiDAV's directory browser
renders for a browser's GET of a folder (until the web app replaces it). The
assets are served anonymously (``davserver.auth.is_public_asset``); the page
itself needs the login like every other path."""

from pathlib import Path

HTDOCS = Path(__file__).parent
"""The folder WsgiDAV's ``dir_browser.htdocs_path`` names."""
