"""mgmtd: the cluster manager (membership, routing info, chain states, primary lease).

Arrives with issue 3.
"""
