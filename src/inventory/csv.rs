//! CSV cells that a spreadsheet opens as text, whatever a hostile report put in them.
//!
//! Contract: every cell is (1) neutralised against formula injection (OWASP "CSV injection"):
//! a cell whose first character, after any leading spaces, is `=`, `+`, `-`, `@`, a tab or a
//! carriage return (or their full-width forms) gets a leading `'`; (2) stripped of control
//! characters and bidirectional overrides, written as `\u{..}` escapes, so a cell can neither
//! break a row nor disguise itself on a terminal; (3) quoted per RFC 4180 when it holds a
//! comma, a quote or a space at either end. Rows end with CRLF, as RFC 4180 says.

use std::borrow::Cow;
use std::io::{self, Write};

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_START: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// A value as a CSV cell: neutralised, escaped and quoted as the module says.
pub fn cell(value: &str) -> String {
    let first = value.trim_start_matches(' ').chars().next();
    let neutral: Cow<str> = if first.is_some_and(|c| FORMULA_START.contains(&c)) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    };
    let text = crate::report::escape_control(&neutral, &[]);
    let needs_quotes = text.contains([',', '"', ';'])
        || text.starts_with(' ')
        || text.ends_with(' ')
        || text.contains(['\n', '\r']);
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.into_owned()
    }
}

/// Writes one row of cells.
pub fn write_row(out: &mut dyn Write, cells: impl IntoIterator<Item = String>) -> io::Result<()> {
    let row: Vec<String> = cells.into_iter().map(|c| cell(&c)).collect();
    out.write_all(row.join(",").as_bytes())?;
    out.write_all(b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formulas_are_neutralised_and_cells_quoted() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+cmd"), "'+cmd");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("  =x"), "'  =x");
        assert_eq!(cell(" x "), "\" x \"");
        assert_eq!(cell("\t=x"), "'\\u{9}=x");
        assert_eq!(cell("\r=x"), "'\\u{d}=x");
        assert_eq!(cell("＝x"), "'＝x");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("line\nbreak"), "line\\u{a}break");
        assert_eq!(cell("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(cell("a; =b"), "\"a; =b\"");
        assert_eq!(cell(""), "");
    }
}
