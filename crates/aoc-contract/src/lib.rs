//! The Aggregation-Only Contract (AOC): raw advisory documents, canonical JSON hashing, mapping of
//! upstream formats, the guard, and revision-chain checks shared by every store and verifier.

pub mod canonical;
pub mod chain;
pub mod clock;
pub mod guard;
pub mod mapping;
pub mod model;
pub mod tree;

pub use canonical::{content_hash, to_canonical_vec};
pub use guard::{Guard, GuardOptions, Violation, ViolationCode};
pub use mapping::{map_document, Format, MapContext, MapError};
pub use model::{DocHead, RawDocument, UpstreamKey};
