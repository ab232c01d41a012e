//! Rule checks: every example must be reported and every negative example must not, through
//! the full scanner (keywords, windows, regex, entropy, validators, placeholders, allowlists,
//! and the overlap resolution between rules).
//!
//! This module reaches forward to [`crate::scan`], a later stage: a rule's examples mean
//! something only through the scanner that will run it, not through its regex alone.

use crate::rules::Rule;
use crate::scan::Scanner;

/// One example that did not behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCheckFailure {
    /// The rule.
    pub rule: String,
    /// What went wrong, with the example.
    pub message: String,
}

/// Checks the examples of the scanner's rules that `select` accepts.
pub fn check_rules(scanner: &Scanner, select: impl Fn(&Rule) -> bool) -> Vec<RuleCheckFailure> {
    let mut worker = scanner.worker();
    let mut failures = Vec::new();
    for (i, rule) in scanner.rules().rules().iter().enumerate() {
        if !select(rule) || rule.is_synthetic() {
            continue;
        }
        let fail = |message: String| RuleCheckFailure {
            rule: rule.spec.id.clone(),
            message,
        };
        if rule.compiled().is_none() {
            failures.push(fail("regex does not compile".into()));
            continue;
        }
        if rule.spec.examples.is_empty() {
            failures.push(fail("has no examples".into()));
        }
        if rule.spec.negative_examples.is_empty() {
            failures.push(fail("has no negative examples".into()));
        }
        for ex in &rule.spec.examples {
            let found = worker.scan(ex.as_bytes());
            if !found.iter().any(|m| m.rule == i) {
                let others: Vec<&str> = found.iter().map(|m| scanner.rule(m.rule).id()).collect();
                failures.push(fail(format!(
                    "example not reported{}: {ex:?}",
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(" (reported as {})", others.join(", "))
                    }
                )));
            }
        }
        for ex in &rule.spec.negative_examples {
            let found = worker.scan(ex.as_bytes());
            if let Some(m) = found.iter().find(|m| m.rule == i) {
                let secret = String::from_utf8_lossy(&ex.as_bytes()[m.secret_span.clone()]);
                failures.push(fail(format!(
                    "negative example reported (secret {secret:?}): {ex:?}"
                )));
            }
        }
    }
    failures
}
