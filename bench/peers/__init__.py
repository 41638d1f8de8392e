"""The systems the benchmarks compare threefs with, each as a context manager that starts it, yields
where to run, and stops and cleans it afterwards; each module also runs as a script
(``run [-- COMMAND]``) to hold one up by hand.

- ``common``: FUSE daemons in the foreground, finding and ending processes, the script CLI;
- ``threefs_cluster``: a 3-node, replication-3 ``LocalCluster`` and its FUSE mount;
- ``glusterfs``: a GlusterFS replica-3 volume on loopback, FUSE-mounted (Debian packages,
  installed on demand: ``bench/peers/glusterfs.py install``);
- ``passthrough``: pyfuse3's own passthrough example over a local directory, the FUSE baseline
  (run by ``passthrough_daemon``, which makes its readdir linear).

Run from the repository root as root; everything lives under a temporary directory and listens
on 127.0.0.1 only.
"""
