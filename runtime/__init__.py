"""Process plumbing shared by the server and the mount, free of the core's
database and store code: garbage-collector settings (``heap``), the O_DIRECT
buffer pool (``alignedbuffers``) and the CLI's byte-size option (``sizes``)."""
