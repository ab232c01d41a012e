//! Pickles, parsed statically: string constants and imported callables, never executed.
