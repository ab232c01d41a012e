//! Human-readable report: one block per finding, most severe first, coloured on a terminal.

use std::io::{self, Write};

use super::{escape_control, ReportContext};
use crate::findings::Finding;
use crate::rules::Severity;

/// Locations printed per finding before "and N more".
const MAX_LOCATIONS: usize = 10;

/// Escaped for the terminal (see [`escape_control`]), then coloured when asked.
fn paint(ctx: &ReportContext, code: &str, s: &str) -> String {
    let s = escape_control(s, &[]);
    if ctx.color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.into_owned()
    }
}

/// Escaped for the terminal, not coloured.
fn plain(s: &str) -> String {
    escape_control(s, &[]).into_owned()
}

fn severity_colour(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "36",
        Severity::Info => "2",
    }
}

/// `verified: live  owner alice  scopes repo, read:org  expires …  (endpoint)`.
fn verification_line(ctx: &ReportContext, v: &crate::verify::Verification) -> String {
    use crate::verify::Status;
    let colour = match v.status {
        Status::Live => "1;31",
        Status::Invalid => "32",
        Status::Unknown | Status::Error => "33",
    };
    let mut line = format!("verified: {}", paint(ctx, colour, v.status.as_str()));
    if let Some(o) = &v.owner {
        line.push_str(&format!("  owner {}", plain(o)));
    }
    if !v.scopes.is_empty() {
        line.push_str(&format!("  scopes {}", plain(&v.scopes.join(", "))));
    }
    if let Some(e) = &v.expires {
        line.push_str(&format!("  expires {}", plain(e)));
    }
    if let Some(m) = &v.message {
        line.push_str(&format!("  ({})", plain(m)));
    }
    if let (true, Some(at)) = (v.cached, &v.checked) {
        line.push_str(&format!("  (as answered {}, kept)", plain(at)));
    }
    if let Some(e) = &v.endpoint {
        line.push_str(&format!("  {}", paint(ctx, "2", e)));
    }
    line
}

pub fn write(ctx: &ReportContext, findings: &[Finding], out: &mut dyn Write) -> io::Result<()> {
    let mut order: Vec<&Finding> = findings.iter().collect();
    order.sort_by_key(|f| std::cmp::Reverse(f.rule.severity));
    for f in order {
        let rule = &f.rule;
        let sev = rule.severity;
        writeln!(
            out,
            "{} {} {}",
            paint(
                ctx,
                severity_colour(sev),
                &format!("{:<8}", sev.as_str().to_uppercase())
            ),
            paint(ctx, "1", &rule.id),
            plain(&rule.name),
        )?;
        // A short fingerprint tells two redacted secrets apart.
        let short_fp = &f.fingerprint[..f.fingerprint.len().min(8)];
        let label = match f.what {
            crate::findings::What::Secret(_) | crate::findings::What::Redacted(_) => "secret",
            crate::findings::What::UnsafeCode(_) => "  code",
        };
        writeln!(
            out,
            "         {label}: {}  {}",
            paint(ctx, "35", &ctx.secret_of(f)),
            paint(ctx, "2", &format!("[{short_fp}]"))
        )?;
        if let Some(v) = &f.verification {
            writeln!(out, "         {}", verification_line(ctx, v))?;
        }
        for loc in f.locations.iter().take(MAX_LOCATIONS) {
            let path = ctx.path(loc);
            let place = match (loc.extra.name, loc.position) {
                (Some(kind), _) => format!("{path} (in the {} name)", kind.as_str()),
                (None, Some(p)) => format!("{path}:{}:{}", p.line, p.column),
                (None, None) => format!("{path} @ byte {}", loc.offset),
            };
            writeln!(
                out,
                "         at {}  {}",
                paint(ctx, "32", &place),
                paint(ctx, "2", &ctx.snippet(loc))
            )?;
            let mut facts = Vec::new();
            if let Some(r) = &loc.repository {
                facts.push(format!("repository {}", ctx.text(r)));
            }
            if let Some(c) = loc.extra.cell {
                facts.push(format!("cell {c}"));
            }
            if let Some(o) = loc.extra.output {
                facts.push(format!("output {o}"));
            }
            if let Some(r) = loc.extra.record {
                facts.push(format!("record {r}"));
            }
            if let Some(r) = loc.extra.row {
                facts.push(format!("row {r}"));
            }
            if let Some(k) = &loc.extra.key {
                facts.push(format!("key {}", ctx.text(k)));
            }
            if let Some(m) = &loc.extra.message {
                facts.push(m.clone());
            }
            if let Some(d) = &loc.extra.decoded {
                facts.push(format!("decoded from {d}"));
            }
            if !facts.is_empty() {
                writeln!(out, "            {}", plain(&facts.join(", ")))?;
            }
            if let Some(c) = loc.provenance.commit() {
                let short = &c.id[..c.id.len().min(12)];
                writeln!(
                    out,
                    "            in commit {} by {} <{}> on {}",
                    paint(ctx, "33", short),
                    plain(&ctx.text(&c.author)),
                    plain(&ctx.text(&c.email)),
                    plain(&c.date)
                )?;
            }
        }
        if f.locations.len() > MAX_LOCATIONS {
            writeln!(
                out,
                "         ... and {} more",
                crate::report::plural(f.locations.len() - MAX_LOCATIONS, "location", "locations")
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
