"""Meta operations, one module each. Every operation is a synchronous function
``op(ctx: OpContext, request) -> response`` run inside one KV transaction by
``meta.ops.context.run_op`` (retried on conflict, idempotent by request id)."""
