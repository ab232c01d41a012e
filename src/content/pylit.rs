//! A reader of Python literals (the dictionary of an `.npy` header): strings, tuples, lists,
//! dicts and atoms, walked with bounded nesting and skipped without being stored, so a huge
//! literal costs no memory.

/// A cursor over a Python literal; the caller reads what it needs and skips the rest.
pub(crate) struct PyLiteral<'a> {
    pub(crate) s: &'a [u8],
    pub(crate) pos: usize,
    /// Nesting deeper than this is an error.
    max_depth: usize,
}

impl<'a> PyLiteral<'a> {
    pub(crate) fn new(s: &'a [u8], max_depth: usize) -> Self {
        PyLiteral {
            s,
            pos: 0,
            max_depth,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    pub(crate) fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// On the opening bracket: consumes it and returns true if the sequence closes at once.
    pub(crate) fn open(&mut self, close: u8) -> bool {
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// After an item: consumes `,` (and the closing bracket after a trailing comma) or the
    /// closing bracket; returns true if the sequence is closed.
    pub(crate) fn after_item(&mut self, close: u8) -> Result<bool, String> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.pos += 1;
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(format!("expected `,` or `{}`", char::from(close))),
        }
    }

    /// A quoted string at `pos` (on its quote): its bytes, backslash escapes taken literally.
    pub(crate) fn string(&mut self) -> Result<Vec<u8>, String> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string".to_owned()),
                Some(b) if b == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    if let Some(&next) = self.s.get(self.pos + 1) {
                        out.push(next);
                    }
                    self.pos += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// After an item of a sequence: skips the remaining items and the closing bracket.
    pub(crate) fn skip_rest(&mut self, close: u8, depth: usize) -> Result<(), String> {
        while !self.after_item(close)? {
            self.skip_value(depth + 1)?;
        }
        Ok(())
    }

    /// Skips one value: a string, a tuple, list or dict, or an atom (number, `True`, `None`).
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > self.max_depth {
            return Err("literal nested too deeply".to_owned());
        }
        self.ws();
        match self.peek() {
            Some(b'\'' | b'"') => {
                self.string()?;
            }
            Some(open @ (b'(' | b'[' | b'{')) => {
                let close = match open {
                    b'(' => b')',
                    b'[' => b']',
                    _ => b'}',
                };
                if !self.open(close) {
                    loop {
                        self.skip_value(depth + 1)?;
                        if open == b'{' {
                            self.ws();
                            if self.peek() != Some(b':') {
                                return Err("expected `:` in a dictionary".to_owned());
                            }
                            self.pos += 1;
                            self.skip_value(depth + 1)?;
                        }
                        if self.after_item(close)? {
                            break;
                        }
                    }
                }
            }
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-') => {
                while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
                {
                    self.pos += 1;
                }
            }
            Some(_) => return Err("unexpected character".to_owned()),
            None => return Err("header ends inside a value".to_owned()),
        }
        Ok(())
    }
}
