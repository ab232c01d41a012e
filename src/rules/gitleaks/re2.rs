//! Go (RE2) regexes translated into the byte-mode dialect trawl compiles.

use std::ops::Range;

use Re2ErrorKind::*;

/// Why a Go regex cannot be translated. Errors name a position, never a piece of the regex
/// (it is the rule file's content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Re2ErrorKind {
    #[error("unmatched `)`")]
    UnmatchedParen,
    #[error("missing `)`")]
    MissingParen,
    #[error("trailing backslash")]
    TrailingBackslash,
    /// trawl's regex engine is built without Unicode tables.
    #[error("Unicode classes (\\p) are not supported")]
    UnicodeClass,
    #[error("bad hex escape")]
    BadHexEscape,
    #[error("bad octal escape")]
    BadOctalEscape,
    /// RE2 rejects back-references too.
    #[error("back-reference")]
    BackReference,
    #[error("unsupported escape")]
    UnsupportedEscape,
    #[error("bad group name")]
    BadGroupName,
    #[error("empty group name")]
    EmptyGroupName,
    #[error("unsupported group (look-around or unknown flag)")]
    UnsupportedGroup,
    #[error("missing `]`")]
    MissingBracket,
    #[error("bad class range")]
    BadClassRange,
    #[error("unknown POSIX class")]
    UnknownClass,
    #[error("empty class")]
    EmptyClass,
}

/// A translation error and where the translator stood.
#[derive(Debug, thiserror::Error)]
#[error("{kind} (at character {at} of the regex)")]
pub(super) struct Re2Error {
    pub(super) kind: Re2ErrorKind,
    /// 1-based character position in the Go regex.
    pub(super) at: usize,
}

/// A Go regex translated into trawl's dialect.
#[derive(Debug)]
pub(super) struct Translated {
    pub(super) pattern: String,
    /// Capturing groups in the pattern.
    pub(super) groups: usize,
    /// Where the `secret` group lies in `pattern`.
    pub(super) secret_span: Option<Range<usize>>,
}

/// Translates a Go (RE2) regex into the byte-mode dialect trawl compiles, renaming capture group
/// `secret_group` (counted as Go counts them, by opening parenthesis, named groups included)
/// `secret` and dropping every other group name (so names cannot clash or be invalid in Rust).
///
/// Differences handled: a `{` that does not start a repetition is a literal in Go; `\<`/`\>` are
/// literals in Go but word boundaries in Rust; `[`, `&&`, `--`, `~~` inside a class are literal
/// in Go but set syntax in Rust; `\Q…\E` and octal escapes do not exist in Rust; `\xE9` is a
/// code point in Go but a byte in byte mode; non-ASCII class members need Unicode mode (see
/// [`Translator::class`]). Errors: look-around and back-references (RE2 rejects them too) and
/// Unicode classes (`\pL`: the engine is built without Unicode tables).
pub(super) fn translate_regex(
    go: &str,
    secret_group: Option<usize>,
) -> Result<Translated, Re2Error> {
    let mut t = Translator {
        src: go.chars().collect(),
        i: 0,
        out: String::with_capacity(go.len() + 16),
        groups: 0,
        target: secret_group,
        open: Vec::new(),
        secret_span: None,
    };
    t.run()?;
    Ok(Translated {
        pattern: t.out,
        groups: t.groups,
        secret_span: t.secret_span,
    })
}

struct Translator {
    src: Vec<char>,
    i: usize,
    out: String,
    groups: usize,
    target: Option<usize>,
    /// Open groups: the output offset of the `secret` group's start, `None` for the others.
    open: Vec<Option<usize>>,
    secret_span: Option<Range<usize>>,
}

/// An element of a bracketed class after an escape.
enum ClassAtom {
    Char(char),
    /// A POSIX class (`[:digit:]`).
    Set(String),
}

const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

impl Translator {
    fn err(&self, kind: Re2ErrorKind) -> Re2Error {
        Re2Error {
            kind,
            at: self.i.max(1),
        }
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src.get(self.i + n).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn run(&mut self) -> Result<(), Re2Error> {
        while let Some(c) = self.next() {
            match c {
                '\\' => self.escape()?,
                '[' => self.class()?,
                '(' => self.group()?,
                ')' => {
                    let secret = self.open.pop().ok_or_else(|| self.err(UnmatchedParen))?;
                    self.out.push(')');
                    if let Some(start) = secret {
                        self.secret_span = Some(start..self.out.len());
                    }
                }
                '{' => match self.repetition() {
                    Some(rep) => self.out.push_str(&rep),
                    None => self.out.push_str(r"\{"),
                },
                '}' => self.out.push_str(r"\}"),
                '.' | '^' | '$' | '|' | '*' | '+' | '?' => self.out.push(c),
                c => push_literal(&mut self.out, c),
            }
        }
        if !self.open.is_empty() {
            return Err(self.err(MissingParen));
        }
        Ok(())
    }

    /// After `\` outside a class.
    fn escape(&mut self) -> Result<(), Re2Error> {
        let c = self.next().ok_or_else(|| self.err(TrailingBackslash))?;
        match c {
            'Q' => {
                while let Some(c) = self.next() {
                    if c == '\\' && self.peek() == Some('E') {
                        self.i += 1;
                        break;
                    }
                    push_literal(&mut self.out, c);
                }
            }
            'A' | 'z' | 'b' | 'B' | 'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.out.push('\\');
                self.out.push(c);
            }
            'p' | 'P' => return Err(self.err(UnicodeClass)),
            c => {
                let ch = self.escaped_char(c)?;
                push_literal(&mut self.out, ch);
            }
        }
        Ok(())
    }

    /// The character an escape stands for (`c` follows the backslash).
    fn escaped_char(&mut self, c: char) -> Result<char, Re2Error> {
        Ok(match c {
            'a' => '\x07',
            'f' => '\x0C',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0B',
            'x' => {
                let digits: String = if self.peek() == Some('{') {
                    self.i += 1;
                    let mut d = String::new();
                    loop {
                        match self.next() {
                            Some('}') => break,
                            Some(h) => d.push(h),
                            None => return Err(self.err(BadHexEscape)),
                        }
                    }
                    d
                } else {
                    (0..2).filter_map(|_| self.next()).collect()
                };
                u32::from_str_radix(&digits, 16)
                    .ok()
                    .filter(|_| !digits.is_empty() && digits.chars().all(|h| h.is_ascii_hexdigit()))
                    .and_then(char::from_u32)
                    .ok_or_else(|| self.err(BadHexEscape))?
            }
            '0'..='7' => {
                // Go: `\0` and 2-3 digit octal escapes; a lone `\1`-`\7` is a back-reference.
                if c != '0' && !self.peek().is_some_and(|d| ('0'..='7').contains(&d)) {
                    return Err(self.err(BackReference));
                }
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.i += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(value).ok_or_else(|| self.err(BadOctalEscape))?
            }
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => c,
            _ => return Err(self.err(UnsupportedEscape)),
        })
    }

    /// After `(`.
    fn group(&mut self) -> Result<(), Re2Error> {
        if self.peek() != Some('?') {
            self.open_capture();
            return Ok(());
        }
        self.i += 1;
        let named = match (self.peek(), self.peek_at(1)) {
            (Some('P'), Some('<')) => {
                self.i += 2;
                true
            }
            (Some('<'), Some(c)) if c != '=' && c != '!' => {
                self.i += 1;
                true
            }
            _ => false,
        };
        if named {
            let mut name = String::new();
            loop {
                match self.next() {
                    Some('>') => break,
                    Some(c) if c.is_alphanumeric() || c == '_' => name.push(c),
                    _ => return Err(self.err(BadGroupName)),
                }
            }
            if name.is_empty() {
                return Err(self.err(EmptyGroupName));
            }
            self.open_capture();
            return Ok(());
        }
        let mut flags = String::new();
        loop {
            match self.next() {
                Some(c @ ('i' | 'm' | 's' | 'U' | '-')) => flags.push(c),
                Some(':') => {
                    self.out.push_str(&format!("(?{flags}:"));
                    self.open.push(None);
                    return Ok(());
                }
                Some(')') if !flags.is_empty() => {
                    self.out.push_str(&format!("(?{flags})"));
                    return Ok(());
                }
                Some(_) => return Err(self.err(UnsupportedGroup)),
                None => return Err(self.err(MissingParen)),
            }
        }
    }

    fn open_capture(&mut self) {
        self.groups += 1;
        if self.target == Some(self.groups) {
            self.open.push(Some(self.out.len()));
            self.out.push_str("(?P<secret>");
        } else {
            self.open.push(None);
            self.out.push('(');
        }
    }

    /// After `{`: the repetition `{n}`, `{n,}` or `{n,m}` if one follows (then consumed); Go
    /// reads any other `{` as a literal.
    fn repetition(&mut self) -> Option<String> {
        let mut j = self.i;
        let digits = |j: &mut usize| {
            let start = *j;
            while self.src.get(*j).is_some_and(char::is_ascii_digit) {
                *j += 1;
            }
            *j > start
        };
        if !digits(&mut j) {
            return None;
        }
        if self.src.get(j) == Some(&',') {
            j += 1;
            digits(&mut j);
        }
        if self.src.get(j) != Some(&'}') {
            return None;
        }
        let rep: String = std::iter::once('{')
            .chain(self.src[self.i..=j].iter().copied())
            .collect();
        self.i = j + 1;
        Some(rep)
    }

    /// After `[`: a bracketed class, re-escaped for Rust. Byte-mode classes hold ASCII only:
    /// non-ASCII members go to a Unicode-mode class, case-sensitive because the engine has no
    /// Unicode case tables (`(?i)` still applies to the ASCII members).
    fn class(&mut self) -> Result<(), Re2Error> {
        let mut ascii = String::new();
        let mut other = String::new();
        let negated = self.peek() == Some('^');
        if negated {
            self.i += 1;
        }
        let mut first = true;
        loop {
            let c = self.next().ok_or_else(|| self.err(MissingBracket))?;
            if c == ']' && !first {
                break;
            }
            first = false;
            if c == '[' && self.peek() == Some(':') {
                if let Some(posix) = self.posix_class()? {
                    ascii.push_str(&posix);
                    continue;
                }
            }
            let lo = match self.class_atom(c)? {
                ClassAtom::Char(ch) => ch,
                ClassAtom::Set(set) => {
                    ascii.push_str(&set);
                    continue;
                }
            };
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|n| n != ']') {
                self.i += 1;
                let h = self.next().ok_or_else(|| self.err(MissingBracket))?;
                let ClassAtom::Char(h) = self.class_atom(h)? else {
                    return Err(self.err(BadClassRange));
                };
                if h < lo {
                    return Err(self.err(BadClassRange));
                }
                hi = h;
            }
            if lo.is_ascii() {
                push_class_range(&mut ascii, lo, hi.min('\x7F'));
            }
            if !hi.is_ascii() {
                push_class_range(&mut other, lo.max('\u{80}'), hi);
            }
        }
        let out = &mut self.out;
        match (negated, ascii.is_empty(), other.is_empty()) {
            (false, _, true) | (true, false, true) => {
                out.push_str(&format!("[{}{ascii}]", if negated { "^" } else { "" }));
            }
            (false, true, false) => out.push_str(&format!("(?u-i:[{other}])")),
            (false, false, false) => out.push_str(&format!("(?:[{ascii}]|(?u-i:[{other}]))")),
            // Exact, but the ASCII members lose a surrounding `(?i)`.
            (true, _, false) => out.push_str(&format!("(?u-i:[^{ascii}{other}])")),
            (true, true, true) => return Err(self.err(EmptyClass)),
        }
        Ok(())
    }

    /// After `[` followed by `:` in a class: `[:name:]`, consumed, or `None` (a literal `[`).
    fn posix_class(&mut self) -> Result<Option<String>, Re2Error> {
        let rest = &self.src[self.i + 1..];
        let Some(end) = rest.windows(2).position(|w| w == [':', ']']) else {
            return Ok(None);
        };
        let name: String = rest[..end].iter().collect();
        if !POSIX_CLASSES.contains(&name.trim_start_matches('^')) {
            return Err(self.err(UnknownClass));
        }
        self.i += 1 + end + 2;
        Ok(Some(format!("[:{name}:]")))
    }

    /// One element of a class starting with `c`.
    fn class_atom(&mut self, c: char) -> Result<ClassAtom, Re2Error> {
        if c != '\\' {
            return Ok(ClassAtom::Char(c));
        }
        let e = self.next().ok_or_else(|| self.err(MissingBracket))?;
        let posix = |name: &str| Ok(ClassAtom::Set(format!("[:{name}:]")));
        match e {
            // POSIX classes are ASCII in Rust, even inside `(?u:…)`, like RE2's `\d\w\s`.
            'd' => posix("digit"),
            'D' => posix("^digit"),
            'w' => posix("word"),
            'W' => posix("^word"),
            's' => posix("space"),
            'S' => posix("^space"),
            'p' | 'P' => Err(self.err(UnicodeClass)),
            e => Ok(ClassAtom::Char(self.escaped_char(e)?)),
        }
    }
}

/// Appends a literal character outside a class.
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_control() {
        out.push_str(&format!("\\x{{{:02X}}}", c as u32));
    } else if c.is_ascii() && regex_syntax_meta(c) {
        out.push('\\');
        out.push(c);
    } else {
        out.push(c);
    }
}

/// Appends the class member `lo-hi` (one character when equal).
fn push_class_range(out: &mut String, lo: char, hi: char) {
    push_class_char(out, lo);
    if hi != lo {
        out.push('-');
        push_class_char(out, hi);
    }
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_control() {
        out.push_str(&format!("\\x{{{:02X}}}", c as u32));
    } else if c.is_ascii_punctuation() && c != '<' && c != '>' {
        // (`\<`, `\>` are word boundaries in Rust, not escapes.)
        out.push('\\');
        out.push(c);
    } else {
        out.push(c);
    }
}

/// Rust regex meta characters (escaping them is always allowed).
fn regex_syntax_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}
