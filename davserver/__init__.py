"""The WebDAV face of drivegate: a WsgiDAV provider over ``core.Drive``, Basic
auth against drivegate users, and the cheroot runner (``drivegate serve``).

Modules:

- WebDAV: ``provider`` (paths → resources), ``resources`` (files and folders,
  dead properties), ``virtual`` (the read-only ``/.versions`` and ``/.trash``
  folders), ``propfind`` and ``propxml`` (PROPFIND answers), ``locks`` (SQL
  lock storage, expiry sweeper), ``ranges`` and ``rangeget`` (Range GETs),
  ``errors`` (the DriveError → HTTP seam), ``browser/`` (the folder page a
  browser gets).
- Shared by WebDAV and the sync API (``api/``): ``urlspace`` (what lives where:
  the drive at ``/``, the rest under ``/.drivegate/``, the old aliases),
  ``auth`` (logins, throttling),
  ``app`` (WSGI assembly, health check, request log), ``sameorigin`` (the
  cross-site guard), ``proxied`` (the client address behind a trusted proxy).
- Hostile input, before any work: ``pathlimits`` (400/414 for paths over a
  limit), ``framing`` (ambiguous bodies, long header fields), ``xmlguard``
  (bounded XML bodies), ``slowclients`` (header timeout, minimum body rate),
  ``errorbodies`` (error answers' honest Content-Length).
- ``sockets`` (cheroot's socket files without copies) and ``cli`` (``drivegate serve``,
  ``lock list/break``).
"""

from davserver.app import build_app
from davserver.cli import COMMANDS

__all__ = ["COMMANDS", "build_app"]
