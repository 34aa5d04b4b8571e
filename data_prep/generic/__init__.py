"""The generic CTR source: any click log (CSV or Parquet) described by a YAML schema (docs/generic_source.md)."""
