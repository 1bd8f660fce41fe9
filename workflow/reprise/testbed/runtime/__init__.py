"""ElasticFlow-style runtime below the scheduler: node agents, elastic trainers, and the client
the testbed executor drives (start, rescale, migrate, stop; measured restart times)."""
