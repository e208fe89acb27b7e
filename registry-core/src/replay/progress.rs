//! How far a long replay (`rebuild`, `recover`, `verify`) has come, for an operator's
//! progress bar or log: the log's records first, then the projections compared with
//! the fresh fold, which at national scale takes minutes of its own.

/// A stage of a long replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The log read, checked or folded; counted in records.
    Log,
    /// Each projection compared with the fresh fold (and, in a rebuild, repaired);
    /// counted in projections.
    Projections,
}

impl Stage {
    /// What is counted, in a word: "log" or "projections".
    pub fn name(self) -> &'static str {
        match self {
            Stage::Log => "log",
            Stage::Projections => "projections",
        }
    }
}

/// Where a long replay has reached: `done` of `total` in its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
}

impl Reached {
    /// `done` records of the log's `total`.
    pub fn log(done: u64, total: u64) -> Self {
        Self { stage: Stage::Log, done, total }
    }

    /// `done` projections of `total` compared.
    pub fn projections(done: u64, total: u64) -> Self {
        Self { stage: Stage::Projections, done, total }
    }
}
