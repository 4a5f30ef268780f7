"""The WebDAV face of drivegate (arrives with the WebDAV issue): a WsgiDAV
provider over ``core.Drive``, SQL lock and property storage, auth, the sync
API and the cheroot runner."""
