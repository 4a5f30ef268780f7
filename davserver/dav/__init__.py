"""The WebDAV face proper: WsgiDAV's provider over ``core.Drive`` and what it
serves. ``provider`` (paths → resources, request checks), ``resources`` (files
and folders, dead properties), ``virtual`` (the read-only ``/.versions`` and
``/.trash`` folders), ``propfind`` and ``propxml`` (streamed PROPFIND answers),
``checksums`` (``oc:checksums``), ``locks`` (SQL lock storage, expiry
sweeper), ``ranges`` and ``rangeget`` (Range GETs), ``destination`` (a
``Destination`` naming this server made plain), ``xmlguard`` (bounded XML
bodies), ``errors`` (the DriveError → HTTP seam), ``browser/`` (the folder
page a browser gets)."""
