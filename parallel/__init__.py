"""parallel: DualPipe, EPLB, expert-parallel dispatch/combine, overlap analysis."""
