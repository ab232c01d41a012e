//! trawl's integration tests: one binary, one module per area.

mod fake_forge;
mod util;

mod action;
mod artifacts;
mod cli;
mod content;
mod deploy;
mod encoded;
mod engine;
mod example_keys;
mod forge;
mod gate;
mod git;
mod golden;
mod hostile;
mod hostile_config;
mod hostile_depth;
mod hostile_linear;
mod hostile_names;
mod inventory;
mod org;
mod org_e2e;
mod org_scan;
mod output;
mod precommit;
mod readme;
mod release;
mod rules_catalogue;
mod state;
mod suppress;
mod verify;
mod verify_aws;
