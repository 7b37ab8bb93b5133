//! The Aggregation-Only Contract (AOC): raw documents, canonical hashing, mapping and the guard.
