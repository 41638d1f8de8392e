"""client.fuse: the FUSE daemon (a leaf: nothing imports it). Arrives with issue 6."""
