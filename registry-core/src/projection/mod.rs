//! The projections: read models folded from the log. `state` holds what each tree
//! stores and how keys are laid out; `fold` applies one event to them; `status_rules`
//! says what each event requires of a person's status (the writer refuses a command
//! that breaks it, the fold a log that does). The live
//! sequencer, `rebuild` and `verify` all fold through the same code, which is why a
//! rebuilt projection equals the live one.

pub mod fold;
pub mod state;
pub mod status_rules;
