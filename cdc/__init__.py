"""Content-defined chunking, shared by the server's core and the mount: FastCDC
cutting and chunk names (``chunking``) and the re-cut of an edited file around
its edits (``deltaplan``). Needs only pyfastcdc; imports nothing of ``core`` or
of either face, so both can stand on it."""
