//! Regex macros shared by rule files (documented in `rules/README.md`).
//!
//! `{{assign}}` is everything between a key name and its value in the notations people write
//! configuration in; `{{end}}` is the end of a value. Keeping them in one place means every
//! keyword-context rule understands the same notations.

/// Between a key and its value: closing quote or bracket of the key, an operator (`=`, `:`,
/// `:=`, `::=`, `:::=`, `?=`, `+=`, `.=`, `=>`, `==`, `||=`, `??=`, after an optional typed
/// declaration `: T` or Go's `name T`, an XML `>`), an XML attribute pair (`key="K" value=`), a
/// Terraform variable's `{ default =`, or a weak separator (a flag's space, a call's `(`, an
/// argument list's `,`); then an optional `Bearer`/`Token`/`Basic` scheme, and an optional
/// opening quote with a string prefix. An operator of the `=` family keeps its value on its
/// line (an empty `K=` does not take the next line as its value). For rules whose value has a
/// distinctive shape (exact length, alphabet).
pub const ASSIGN: &str = concat!(
    r#"(?:[\x60"'\])]{0,2}[ \t]{0,4}(?:"#,
    r#"(?::[ \t]{0,4}[A-Za-z_][\w.<>\[\]|?]{0,30}[ \t]{0,4}|[ \t]{1,4}[A-Za-z_*\[][\w.\[\]*]{0,30}[ \t]{1,4})?"#,
    r#"(?:=|:=|::=|:::=|\?=|\+=|\.=|=>|\|\|=|\?\?=|==)[ \t]{0,6}"#,
    r#"|[ \t]{1,4}(?i:value)=[ \t]{0,6}|\{[ \t\r\n]{0,12}(?i:default|value)[ \t]{0,4}=[ \t]{0,6}"#,
    r#"|(?::|[ \t]|,|>|\()[ \t\r\n]{0,6})"#,
    r#"(?:[\x60"']?(?i:bearer|token|basic)[ \t]+)?(?:[@rbuf]?[\x60"'])?)"#,
);

/// Like [`ASSIGN`], but a weak separator (space, `,`, `(`) must be followed by a quoted value:
/// for generic rules, whose values have no shape of their own, or `check(password, other)` and
/// `Password reset` would read as assignments.
pub const ASSIGN_STRICT: &str = concat!(
    r#"(?:[\x60"'\])]{0,2}[ \t]{0,4}(?:"#,
    r#"(?:(?::[ \t]{0,4}[A-Za-z_][\w.<>\[\]|?]{0,30}[ \t]{0,4}|[ \t]{1,4}[A-Za-z_*\[][\w.\[\]*]{0,30}[ \t]{1,4})?"#,
    r#"(?:=|:=|::=|:::=|\?=|\+=|\.=|=>|\|\|=|\?\?=|==)[ \t]{0,6}"#,
    r#"|[ \t]{1,4}(?i:value)=[ \t]{0,6}|\{[ \t\r\n]{0,12}(?i:default|value)[ \t]{0,4}=[ \t]{0,6}"#,
    r#"|(?::|>)[ \t\r\n]{0,6})(?:[\x60"']?(?i:bearer|token|basic)[ \t]+)?(?:[@rbuf]?[\x60"'])?"#,
    r#"|(?:,|\(|[ \t])[ \t\r\n]{0,6}[@rbuf]?[\x60"']))"#,
);

/// The end of a value: a quote, white space, a separator, a backslash escape or end of input.
pub const END: &str = r#"(?:[\x60"'\s,;)\]}<&]|\\[nrt"']|$)"#;

/// Expands the macros in a rule regex.
pub fn expand(pattern: &str) -> String {
    pattern
        .replace("{{assign}}", ASSIGN)
        .replace("{{assign_strict}}", ASSIGN_STRICT)
        .replace("{{end}}", END)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta::Regex;
    use regex_automata::util::syntax;

    /// `pattern` with its macros expanded, compiled in byte mode as rules are.
    fn compile(pattern: &str) -> Regex {
        Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build(&expand(pattern))
            .unwrap()
    }

    fn re() -> Regex {
        compile(r"(?i:api[_-]?key){{assign}}(?P<secret>[A-Za-z0-9]{16}){{end}}")
    }

    #[test]
    fn assign_understands_common_notations() {
        let re = re();
        let v = "Zq3xW9pLm2Rt7YvB";
        let cases = [
            format!("API_KEY={v}"),
            format!("export API_KEY=\"{v}\""),
            format!("api_key = '{v}'"),
            format!("api_key: {v}"),
            format!("\"api_key\": \"{v}\""),
            format!("'api_key' => '{v}',"),
            format!("apiKey := \"{v}\""),
            format!("const API_KEY: string = \"{v}\";"),
            format!("api_key: str = \"{v}\""),
            format!("--api-key {v}"),
            format!("--api-key={v}"),
            format!("client.login(api_key=\"{v}\")"),
            format!("X-Api-Key: {v}"),
            format!("setApiKey(\"{v}\")"),
            format!("config[\"api_key\"] = \"{v}\""),
            format!("setenv(\"API_KEY\", \"{v}\")"),
            format!("<apiKey>{v}</apiKey>"),
            format!("api_key = r\"{v}\""),
            format!("apiKey ||= '{v}'"),
            format!("api_key = \"{v}\"\\n"),
            format!("api-key: Bearer {v}"),
        ];
        for c in &cases {
            assert!(re.is_match(c.as_bytes()), "no match in {c}");
        }
    }

    #[test]
    fn strict_weak_separators_need_a_quoted_value() {
        let re = compile(r"(?i:api[_-]?key){{assign_strict}}(?P<secret>[A-Za-z0-9]{16}){{end}}");
        assert!(re.is_match(b"api_key = Zq3xW9pLm2Rt7YvB"));
        assert!(!re.is_match(b"check(api_key, Zq3xW9pLm2Rt7YvB)"));
        assert!(!re.is_match(b"api_key Zq3xW9pLm2Rt7YvB"));
        assert!(re.is_match(b"check(api_key, \"Zq3xW9pLm2Rt7YvB\")"));
    }

    /// The value `re` captures as `secret` in `text`, if any.
    fn secret(re: &Regex, text: &str) -> Option<String> {
        let mut caps = re.create_captures();
        re.captures(text.as_bytes(), &mut caps);
        let span = caps.get_group_by_name("secret")?;
        Some(text[span.start..span.end].to_string())
    }

    #[test]
    fn assign_understands_the_notations_of_languages_and_config_formats() {
        let v = "Zq3xW9pLm2Rt7YvB";
        let cases = [
            // Go typed declarations.
            format!("var apiKey string = \"{v}\""),
            format!("var API_KEY = \"{v}\""),
            format!("const ApiKey string = `{v}`"),
            format!("apiKey := \"{v}\""),
            // PHP.
            format!("$api_key = '{v}';"),
            format!("$apiKey .= \"{v}\";"),
            format!("define('API_KEY', '{v}');"),
            format!("$config['api_key'] = \"{v}\";"),
            // Makefile.
            format!("API_KEY := {v}"),
            format!("API_KEY ::= {v}"),
            format!("API_KEY :::= {v}"),
            format!("API_KEY ?= {v}"),
            format!("API_KEY += {v}"),
            format!("API_KEY = {v}"),
            // Terraform / HCL.
            format!("  api_key = \"{v}\""),
            format!("variable \"api_key\" {{\n  default = \"{v}\"\n}}"),
            // Java / Kotlin properties and annotations.
            format!("app.api-key={v}"),
            format!("app.api.key: {v}"),
            format!("@Value(\"${{api.key:{v}}}\")"),
            format!("val apiKey: String = \"{v}\""),
            format!("private static final String API_KEY = \"{v}\";"),
            // C# and PowerShell.
            format!("$env:API_KEY = \"{v}\""),
            format!("string apiKey = \"{v}\";"),
            format!("var apiKey = @\"{v}\";"),
            format!("Environment.SetEnvironmentVariable(\"API_KEY\", \"{v}\");"),
            // Dockerfile.
            format!("ENV API_KEY={v}"),
            format!("ENV API_KEY {v}"),
            format!("ARG API_KEY={v}"),
            // systemd.
            format!("Environment=API_KEY={v}"),
            format!("Environment=\"API_KEY={v}\""),
            // XML attributes and elements.
            format!("<add key=\"ApiKey\" value=\"{v}\" />"),
            format!("<setting name=\"api_key\" value='{v}'/>"),
            format!("<entry api-key=\"{v}\"/>"),
            format!("<apiKey>{v}</apiKey>"),
            // SQL string literals.
            format!("INSERT INTO settings VALUES ('api_key', '{v}');"),
            format!("UPDATE settings SET api_key = '{v}' WHERE id = 1;"),
            // URL query parameters.
            format!("https://api.example.com/v1?api_key={v}&format=json"),
            format!("GET /v1/items?limit=5&apiKey={v} HTTP/1.1"),
        ];
        let mut missed = Vec::new();
        for strict in [false, true] {
            let macro_ = if strict {
                "{{assign_strict}}"
            } else {
                "{{assign}}"
            };
            let re = compile(&format!(
                r"(?i:api[_.-]?key){macro_}(?P<secret>[A-Za-z0-9]{{16}}){{{{end}}}}"
            ));
            for c in &cases {
                // `ENV K v` is the one notation whose value is bare after a space, which the
                // strict form refuses by design.
                if strict && c.starts_with("ENV API_KEY ") {
                    continue;
                }
                if secret(&re, c).as_deref() != Some(v) {
                    missed.push(format!("strict: {strict}, in {c}"));
                }
            }
        }
        assert!(missed.is_empty(), "{}", missed.join("\n"));
    }

    #[test]
    fn an_empty_assignment_does_not_take_the_next_line() {
        for macro_ in ["{{assign}}", "{{assign_strict}}"] {
            let re = compile(&format!(
                r"(?i:api[_.-]?key){macro_}(?P<secret>[A-Za-z0-9_=]{{16,40}}){{{{end}}}}"
            ));
            assert!(
                !re.is_match(b"API_KEY=\nSERVICE_USER=etl_loader7\n"),
                "{macro_}"
            );
            assert!(
                !re.is_match(b"api_key = \n  Zq3xW9pLm2Rt7YvB\n"),
                "{macro_}"
            );
            // YAML may put a value on the next line.
            assert!(re.is_match(b"api_key:\n  'Zq3xW9pLm2Rt7YvB'\n"), "{macro_}");
        }
    }

    #[test]
    fn end_rejects_longer_values() {
        let re = re();
        assert!(!re.is_match(b"api_key=Zq3xW9pLm2Rt7YvBx"));
    }
}
