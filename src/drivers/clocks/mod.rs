//! The logical-clocks experiment: set-up in any mode, and its report.

pub mod experiment;
pub mod report;
