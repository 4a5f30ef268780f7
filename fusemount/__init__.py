"""The FUSE face of drivegate (arrives with the mount issues): pyfuse3
operations over a local metadata replica, talking to the server over HTTP."""
