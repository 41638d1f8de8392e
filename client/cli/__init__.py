"""client.cli: the `threefs` command (a leaf: nothing imports it). Arrives with issue 6."""
