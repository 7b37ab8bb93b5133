//! Inputs of the runner: upstream files and feeds in, guarded raw documents out.

pub mod input;
pub mod prepare;

pub use input::{InputReader, InputRecord, Item};
pub use prepare::{Prepared, Preparer};
