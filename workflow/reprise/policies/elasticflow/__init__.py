"""ElasticFlow: admission control, the minimum-satisfactory-share planner, elastic scaling.

The policy in `policy`, the planner in `planner`, scale-up pricing in `pricing`
(docs/policies/elasticflow.md).
"""
