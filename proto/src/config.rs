//! YAML configuration schema of m6-dataplane (filled in by the foundation work).
