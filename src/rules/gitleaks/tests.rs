use super::convert::UNBOUNDED_WINDOW;
use super::re2::translate_regex;
use super::*;
use crate::rules::{compile_regex, Rule, RuleSet, RuleWarningKind, Severity};
use crate::scan::Scanner;

fn scanner(specs: Vec<RuleSpec>) -> Scanner {
    let mut set = RuleSet::default();
    for spec in specs {
        set.add(Rule::compile(spec, "test.toml").unwrap()).unwrap();
    }
    Scanner::new(set).unwrap()
}

/// (rule id, secret) of every finding.
fn findings(scanner: &Scanner, text: &str) -> Vec<(String, String)> {
    scanner
        .worker()
        .scan(text.as_bytes())
        .into_iter()
        .map(|m| {
            (
                scanner.rule(m.rule).id().to_string(),
                text[m.secret_span].to_string(),
            )
        })
        .collect()
}

fn tr(go: &str, group: Option<usize>) -> String {
    let t = translate_regex(go, group).unwrap();
    compile_regex(&t.pattern).unwrap_or_else(|e| panic!("{go} → {}: {e}", t.pattern));
    t.pattern
}

const CONFIG: &str = r#"
title = "Acme gitleaks config"

[extend]
useDefault = true

[allowlist]
description = "global"
paths = ['''(?:^|/)testdata/''']
stopwords = ["sandbox"]

# Secret in group 2, after a non-capturing group, a class holding `(` and an escaped paren.
[[rules]]
id = "ACME API/Key"
description = "Acme API key"
regex = '''(?i)\b(?:acme|acmecorp)[_.-]?(key|token)[\s"':=(]{1,6}\(?(acme_[a-z0-9]{24})\b'''
secretGroup = 2
keywords = ["acme"]

[[rules]]
id = "widget-token"
description = "Widget service token"
regex = '''\b(wdgt_[A-Za-z0-9]{30})\b'''
entropy = 3.5
keywords = ["WDGT_"]
[[rules.allowlists]]
regexTarget = "match"
regexes = ['''^wdgt_0''']

[[rules]]
id = "internal-db-password"
description = "Internal DB password"
regex = '''(?i)intdb_pass(?:word)?\s*=\s*"([^"\s]{12,64})"'''
keywords = ["intdb_pass"]
[rules.allowlist]
regexes = ['''^local-''']
stopwords = ["hunter"]
commits = ["0123abcd"]

[[rules]]
id = "pkcs12-file"
description = "PKCS#12 file"
path = '''(?i)\.p12$'''

[[rules]]
id = "deploy-hook"
description = "Deploy hook URL"
path = '''(?i)deploy'''
regex = '''https://hooks\.acme\.dev/[0-9a-f]{16}'''
keywords = ["hooks.acme.dev"]
"#;

#[test]
fn converts_and_runs_custom_rules() {
    let (specs, warnings) = parse_gitleaks(CONFIG, "gitleaks.toml").unwrap();
    let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "acme-api-key",
            "widget-token",
            "internal-db-password",
            "deploy-hook"
        ]
    );
    let has = |needle: &str| warnings.iter().any(|w| w.to_string().contains(needle));
    assert!(has("[extend] is ignored"), "{warnings:#?}");
    assert!(has(
        "rule `pkcs12-file`: path-only rules are not supported, skipped"
    ));
    assert!(has(
        "rule `deploy-hook`: the path restriction is not applied"
    ));
    assert!(has("regexTarget `match`"));
    assert!(has(
        "rule `internal-db-password`: allowlist `commits` are ignored"
    ));
    assert!(has("global allowlist: allowlist `paths` are ignored"));
    assert!(has("global allowlist: applied to the converted rules only"));
    // Only the rule that could not be converted is a problem; warnings about a rule carry its
    // id and the line of its `[[rules]]` header.
    let problems: Vec<_> = warnings.iter().filter(|w| w.kind.is_problem()).collect();
    assert_eq!(problems.len(), 1, "{warnings:#?}");
    assert_eq!(problems[0].kind, RuleWarningKind::Unconvertible);
    assert_eq!(problems[0].rule.as_deref(), Some("pkcs12-file"));
    assert_eq!(problems[0].line, Some(40));
    assert!(has("line 40: rule `pkcs12-file`: path-only"));
    let extend = warnings
        .iter()
        .find(|w| w.message.starts_with("[extend]"))
        .unwrap();
    assert_eq!(
        (extend.kind, extend.rule.as_deref()),
        (RuleWarningKind::IgnoredField, None)
    );
    // Exact conversions raise no secretGroup or keyword warnings.
    assert!(!has("secretGroup"), "{warnings:#?}");
    assert!(!has("does not appear"), "{warnings:#?}");

    let acme = &specs[0];
    assert_eq!(acme.name, "Acme API key");
    assert_eq!(acme.category, "saas");
    assert_eq!(acme.severity, Severity::High);
    assert_eq!(specs[1].keywords, ["wdgt_"]);
    assert_eq!(specs[1].entropy, Some(3.5));

    let scanner = scanner(specs);
    let found = |text: &str| findings(&scanner, text);
    let pair = |id: &str, secret: &str| vec![(id.to_string(), secret.to_string())];

    // Group 2, not group 1 (`TOKEN`) nor the whole match.
    assert_eq!(
        found(r#"ACME_TOKEN = "acme_4f9k2m8x1q7z3w6e5r0t9y8u""#),
        pair("acme-api-key", "acme_4f9k2m8x1q7z3w6e5r0t9y8u")
    );
    assert_eq!(
        found("acmecorp.key(acme_p0o9i8u7y6t5r4e3w2q1l2k3)"),
        pair("acme-api-key", "acme_p0o9i8u7y6t5r4e3w2q1l2k3")
    );

    // Keywords are case-insensitive; entropy applies; the rule allowlist applies.
    let token = "wdgt_Q7vX2mKp9LzR4tWc8NbY3hJd6FsG1a";
    assert_eq!(
        found(&format!("WIDGET={token}")),
        pair("widget-token", token)
    );
    let flat = "wdgt_aabbccddaabbccddaabbccddaabbcd";
    assert!(crate::scan::filters::shannon_entropy(flat.as_bytes()) < 3.5);
    assert!(found(&format!("WIDGET={flat}")).is_empty());
    assert!(found("WIDGET=wdgt_0Q7vX2mKp9LzR4tWc8NbY3hJd6FsG1").is_empty());
    // The global stopword reaches every converted rule.
    assert!(found("WIDGET=wdgt_Q7vX2mKp9sandboxLzR4tWc8NbY3hJ").is_empty());

    let pass = "Zx8#pQ2!vL9@wR4$";
    assert_eq!(
        found(&format!(r#"intdb_password = "{pass}""#)),
        pair("internal-db-password", pass)
    );
    assert!(found(r#"INTDB_PASS = "local-Zx8pQ2vL9wR4""#).is_empty());
    assert!(found(r#"intdb_pass = "Qm7HUNTER2Kx9pL""#).is_empty());

    // No capture group: the whole match; the path restriction is dropped.
    let hook = "https://hooks.acme.dev/9f8e7d6c5b4a3f2e";
    assert_eq!(found(&format!("url: {hook}\n")), pair("deploy-hook", hook));
}

#[test]
fn tells_gitleaks_configs_from_trawl_rule_files() {
    assert!(is_gitleaks_config(CONFIG));
    assert!(is_gitleaks_config(
        "[[rules]]\nid = \"x\"\nregex = '''x_[a-z]{8}'''\nkeywords = [\"x_\"]\n"
    ));
    assert!(is_gitleaks_config(
        "[[rules]]\nid = \"x\"\nregex = '''(a)(b)'''\nsecretGroup = 2\nname = \"x\"\n"
    ));
    assert!(is_gitleaks_config("[extend]\nuseDefault = true\n"));
    assert!(!is_gitleaks_config(include_str!(
        "../../../rules/huggingface.toml"
    )));
    assert!(!is_gitleaks_config("not [ toml"));
    assert!(!is_gitleaks_config(""));
}

#[test]
fn secret_group_counts_capturing_groups_only() {
    assert_eq!(tr("(a)(b)", Some(2)), "(a)(?P<secret>b)");
    assert_eq!(tr(r"\((a)", Some(1)), r"\((?P<secret>a)");
    assert_eq!(tr(r"[(\]](a)", Some(1)), r"[\(\]](?P<secret>a)");
    assert_eq!(
        tr("(?:x)(?i:y)(?P<n>a)(b)", Some(2)),
        "(?:x)(?i:y)(a)(?P<secret>b)"
    );
    assert_eq!(tr("(?<n>a)(?P<secret>b)", Some(1)), "(?P<secret>a)(b)");
    assert_eq!(tr("(?i)((a)b)c", Some(2)), "(?i)((?P<secret>a)b)c");
    assert_eq!(tr(r"\Q(x)\E(y)", Some(1)), r"\(x\)(?P<secret>y)");
    assert_eq!(tr("no groups", Some(1)), "no groups");
    let t = translate_regex("a(b(c))d", Some(2)).unwrap();
    assert_eq!(t.groups, 2);
    assert_eq!(&t.pattern[t.secret_span.unwrap()], "(?P<secret>c)");
}

#[test]
fn translates_go_syntax() {
    // `{` that does not start a repetition is a literal in Go.
    assert_eq!(tr("a{2}b{2,}c{1,3}", None), "a{2}b{2,}c{1,3}");
    assert_eq!(tr("x{,3}{y}{", None), r"x\{,3\}\{y\}\{");
    // `\<`, `\>` are literals in Go, word boundaries in Rust.
    assert_eq!(tr(r"\<key\>", None), "<key>");
    // Octal, hex above ASCII, control characters.
    assert_eq!(tr(r"\101\0", None), r"A\x{00}");
    assert_eq!(tr(r"caf\xE9\x{e9}", None), "caféé");
    // Set syntax that Rust reads inside classes.
    assert_eq!(tr("[a&&b~~c]", None), r"[a\&\&b\~\~c]");
    assert_eq!(tr("[--/][a-]", None), r"[\--\/][a\-]");
    assert_eq!(tr("[[][]a]", None), r"[\[][\]a]");
    assert_eq!(
        tr(r"[\w.-][^\s\d]", None),
        r"[[:word:]\.\-][^[:space:][:digit:]]"
    );
    assert_eq!(tr(r"[+-/][\]-a]", None), r"[\+-\/][\]-a]");
    assert_eq!(tr("[[:alpha:][:^digit:]]", None), "[[:alpha:][:^digit:]]");
    assert_eq!(tr(r"[<\>]", None), "[<>]");
    // Non-ASCII class members go to a Unicode-mode class.
    assert_eq!(tr("[àé]", None), "(?u-i:[àé])");
    assert_eq!(
        tr(r"(?i)[a-zé\d]", None),
        "(?i)(?:[a-z[:digit:]]|(?u-i:[é]))"
    );
    assert_eq!(
        tr(r"[^\x00-\x{FF}-]", None),
        r"(?u-i:[^\x{00}-\x{7F}\-\x{80}-ÿ])"
    );
    assert_eq!(tr(r"(?i)caf\xE9", None), "(?i)café");
    assert_eq!(tr("(?i)(?-s:x)(?U)y", None), "(?i)(?-s:x)(?U)y");
    let bad = [
        r"(?=x)",
        r"(?<!x)y",
        r"(a)\1",
        r"\C",
        r"[z-a]",
        "(a",
        "a)",
        r"\e",
        r"\pL",
        r"[\p{Greek}]",
    ];
    for bad in bad {
        assert!(translate_regex(bad, None).is_err(), "{bad}");
    }
}

#[test]
fn translated_classes_match_like_go() {
    let re = compile_regex(&tr(r"^[\w.-]{3}[&~]$", None)).unwrap();
    assert!(re.is_match(b"a.-&"));
    assert!(re.is_match(b"_-z~"));
    assert!(!re.is_match(b"a b&"));
    let re = compile_regex(&tr(r"(?i)^k[é\dx]+$", None)).unwrap();
    assert!(re.is_match("Ké9éX".as_bytes()));
    assert!(!re.is_match("k٣".as_bytes()), "\\d stays ASCII");
    let re = compile_regex(&tr(r"^[^é]$", None)).unwrap();
    assert!(re.is_match("e".as_bytes()));
    assert!(re.is_match("è".as_bytes()), "one character, not one byte");
    assert!(!re.is_match("é".as_bytes()));
}

#[test]
fn warns_where_gitleaks_picks_the_secret_differently() {
    let cfg = r#"
[[rules]]
id = "first-may-be-empty"
regex = '''key=(a*)(b+)'''
[[rules]]
id = "first-optional"
regex = '''key=(x)?(y+)'''
[[rules]]
id = "first-always"
regex = '''key=(x+)-(y+)'''
[[rules]]
id = "bad-group"
regex = '''key=(x+)'''
secretGroup = 3
[[rules]]
id = "far-keyword"
regex = '''\bpat[a-z0-9]{14}\.[a-f0-9]{16}\b'''
keywords = ["airtable", "pat"]
[[rules]]
id = "lookahead"
regex = '''key(?=x)'''
[[rules]]
id = "twice"
regex = '''one'''
[[rules]]
id = "twice"
regex = '''two'''
[[rules]]
id = "Twice"
regex = '''three'''
"#;
    let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
    let has = |needle: &str| warnings.iter().any(|w| w.to_string().contains(needle));
    assert!(
        has("rule `first-may-be-empty`: no secretGroup"),
        "{warnings:#?}"
    );
    assert!(has("rule `first-optional`: no secretGroup"));
    assert!(!has("rule `first-always`"));
    assert!(has("rule `bad-group`: secretGroup 3 but the regex has 1"));
    // Keywords are named by position: `airtable` (1 of 2) is not in the regex, `pat` is.
    assert!(has("rule `far-keyword`: keyword 1 of 2 does not appear"));
    assert!(!has("keyword 2 of 2"));
    assert!(has("rule `lookahead`: regex not supported"));
    assert!(warnings
        .iter()
        .any(|w| w.kind == RuleWarningKind::DuplicateId
            && w.rule.as_deref() == Some("twice")
            && w.message.contains("defined more than once")));
    assert!(has("id `twice` is taken, renamed `twice-2`"));
    let ids: Vec<&str> = specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "first-may-be-empty",
            "first-optional",
            "first-always",
            "far-keyword",
            "twice",
            "twice-2"
        ]
    );
    let twice = specs.iter().find(|s| s.id == "twice").unwrap();
    assert_eq!(twice.regex, "two");
}

#[test]
fn allowlist_conditions_and_targets() {
    let cfg = r#"
[[rules]]
id = "a"
regex = '''a_[a-z0-9]{12}'''
[[rules.allowlists]]
condition = "AND"
paths = ['''test''']
regexes = ['''^a_0''']
[[rules.allowlists]]
condition = "AND"
regexes = ['''^a_1''', '''^a_2''']
[[rules]]
id = "b"
regex = '''b_[a-z0-9]{12}'''

[[allowlists]]
targetRules = ["b", "missing"]
stopwords = ["zzz"]
"#;
    let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
    let has = |needle: &str| warnings.iter().any(|w| w.to_string().contains(needle));
    assert!(has("condition AND over several kinds"), "{warnings:#?}");
    assert!(has("rule `missing` is not in this file"));
    assert_eq!(specs[0].allowlist.regexes, ["^a_1", "^a_2"]);
    assert!(specs[0].allowlist.stopwords.is_empty());
    assert_eq!(specs[1].allowlist.stopwords, ["zzz"]);
}

#[test]
fn betterleaks_filters_and_keys_in_any_case() {
    let cfg = r#"
prefilter = '''matchesAny(get(attributes, "path", ""), [`\.png$`])'''
[[rules]]
ID = "one-secret"
Description = "One secret"
regex = '''\b(os_[A-Za-z0-9]{20})\b'''
KEYWORDS = ["os_"]
filter = '''
filter.entropy(finding["secret"]) < 3.0
'''
validate = '''http.get("https://example.com").status == 200'''
[[rules]]
id = "two-secret"
regex = '''\bts_[A-Za-z0-9]{20}\b'''
keywords = ["ts_"]
filter = '''entropy(finding["secret"]) <= 2.5 || finding["secret"].startsWith("x")'''
[[rules]]
id = "generic-thing"
regex = '''thing=([a-z0-9]{20})'''
secretgroup = 1
skipReport = false
[[rules]]
id = "component"
regex = '''c_[a-z]{10}'''
skipReport = true
"#;
    let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
    let has = |needle: &str| warnings.iter().any(|w| w.to_string().contains(needle));
    assert_eq!(specs[0].id, "one-secret");
    assert_eq!(specs[0].name, "One secret");
    assert_eq!(specs[0].keywords, ["os_"]);
    assert_eq!(specs[0].entropy, Some(3.0));
    assert_eq!(specs[1].entropy, None);
    assert!(has(
        "rule `two-secret`: the Betterleaks `filter` expression is not supported"
    ));
    assert!(has(
        "`validate` (live verification) is not supported, ignored in 1 rule(s): one-secret"
    ));
    assert!(has("`prefilter`/`filter` expressions are ignored"));
    assert!(has("rule `component`: `skipReport`"));
    assert_eq!(specs[2].id, "generic-thing");
    assert_eq!(specs[2].category, "generic");
    assert_eq!(specs[2].severity, Severity::Medium);
    assert_eq!(specs.len(), 3);
}

/// Tricky regexes of gitleaks' default config (rules and allowlists): mid-pattern flags,
/// `\z`/`\B`, `[^]]`, literal `{`/`}`, `{{…}}`, escaped class members.
#[test]
fn tricky_default_regexes_translate() {
    let regexes = [
        r#"\bcurl\b(?:.*?|.*?(?:[\r\n]{1,2}.*?){1,5})[ \t\n\r](?:-H|--header)(?:=|[ \t]{0,5})(?:"(?i)(?:Authorization:[ \t]{0,5}(?:Basic[ \t]([a-z0-9+/]{8,}={0,3})|(?:Bearer|(?:Api-)?Token)[ \t]([\w=~@.+/-]{8,})|([\w=~@.+/-]{8,}))|(?:(?:X-(?:[a-z]+-)?)?(?:Api-?)?(?:Key|Token)):[ \t]{0,5}([\w=~@.+/-]{8,}))"|'(?i)(?:Authorization:[ \t]{0,5}(?:Basic[ \t]([a-z0-9+/]{8,}={0,3})|(?:Bearer|(?:Api-)?Token)[ \t]([\w=~@.+/-]{8,})|([\w=~@.+/-]{8,}))|(?:(?:X-(?:[a-z]+-)?)?(?:Api-?)?(?:Key|Token)):[ \t]{0,5}([\w=~@.+/-]{8,}))')(?:\B|\s|\z)"#,
        r#"\bcurl\b(?:.*|.*(?:[\r\n]{1,2}.*){1,5})[ \t\n\r](?:-u|--user)(?:=|[ \t]{0,5})("(:[^"]{3,}|[^:"]{3,}:|[^:"]{3,}:[^"]{3,})"|'([^:']{3,}:[^']{3,})'|((?:"[^"]{3,}"|'[^']{3,}'|[\w$@.-]+):(?:"[^"]{3,}"|'[^']{3,}'|[\w${}@.-]+)))(?:\s|\z)"#,
        r#"[^:]+:(?:change(?:it|me)|pass(?:word)?|pwd|test|token|\*+|x+)"#,
        r#"['"]?<[^>]+>['"]?:['"]?<[^>]+>|<[^:]+:[^>]+>['"]?"#,
        r#"[^:]+:\[[^]]+]"#,
        r#"['"]?[^:]+['"]?:['"]?\$(?:\d|\w+|\{(?:\d|\w+)})['"]?"#,
        r#"\$\([^)]+\):\$\([^)]+\)"#,
        r#"['"]?\$?{{[^}]+}}['"]?:['"]?\$?{{[^}]+}}['"]?"#,
        r#"(?i)^true|false|null$"#,
        r#"^\$(?:\d+|{\d+})$"#,
        r#"^\${(?:[A-Z_]+|[a-z_]+)}$"#,
        r#"^\{\{[ \t]*[\w ().|]+[ \t]*}}$"#,
        r#"^%[+\-# 0]?[bcdeEfFgGoOpqstTUvxX]$"#,
        r#"^\{\d{0,2}}$"#,
        r#"^/Users/(?i)[a-z0-9]+/[\w .-/]+$"#,
        r#"(?:^|[\\'"\x60\s>=:(,)])([a-zA-Z0-9_~.]{3}\dQ~[a-zA-Z0-9_~.-]{31,34})(?:$|[\\'"\x60\s<),])"#,
        r#"\b((?:sc|ext|scauth|authress)_(?i)[a-z0-9]{5,30}\.[a-z0-9]{4,6}\.(?-i:acc)[_-][a-z0-9-]{10,32}\.[a-z0-9+/_=-]{30,120})(?:[\x60'"\s;]|\\[nr]|$)"#,
        r#"[\w.-]{0,50}?(?i:[\w.-]{0,50}?(?:(?-i:[Mm]eraki|MERAKI))(?:[ \t\w.-]{0,20})[\s'"]{0,3})(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'"\s=]{0,5}([0-9a-f]{40})(?:[\x60'"\s;]|\\[nr]|$)"#,
    ];
    for re in regexes {
        tr(re, Some(1));
    }
    // `[^]]`: `]` first in a class is a literal.
    let re = compile_regex(&tr(r#"[^:]+:\[[^]]+]"#, None)).unwrap();
    assert!(re.is_match(b"user:[secret]"));
    let re = compile_regex(&tr(r#"^\$(?:\d+|{\d+})$"#, None)).unwrap();
    assert!(re.is_match(b"${12}"));
    let re = compile_regex(&tr(r#"['"]?\$?{{[^}]+}}['"]?"#, None)).unwrap();
    assert!(re.is_match(b"'{{ token }}'"));
    // Alternative groups without secretGroup: gitleaks takes whichever matched; warned.
    let cfg = r#"
[[rules]]
id = "atlassian-api-token"
regex = '''(?i:atlassian)[ =]{1,3}([a-zA-Z0-9]{24})\b|\b(ATATT3[A-Za-z0-9_\-=]{186})\b'''
keywords = ["atlassian", "atatt3"]
"#;
    let (specs, warnings) = parse_gitleaks(cfg, "t.toml").unwrap();
    assert_eq!(specs.len(), 1);
    assert!(
        warnings[0].message.contains("no secretGroup"),
        "{warnings:#?}"
    );
}

/// A few of gitleaks' default rules, trimmed and written from memory: they all convert
/// without loss, compile and find their tokens.
const DEFAULT_RULES: &str = r#"
title = "gitleaks config"

[allowlist]
description = "global allow lists"
paths = ['''gitleaks\.toml''', '''(?i)\.(?:bmp|gif|jpe?g|png|svg|tiff?)$''']

[[rules]]
id = "github-pat"
description = "Uncovered a GitHub Personal Access Token, potentially leading to unauthorized repository access and sensitive content exposure."
regex = '''ghp_[0-9a-zA-Z]{36}'''
entropy = 3
keywords = ["ghp_"]

[[rules]]
id = "gitlab-pat"
description = "Identified a GitLab Personal Access Token, risking unauthorized access to GitLab repositories and codebase exposure."
regex = '''glpat-[\w-]{20}'''
entropy = 3
keywords = ["glpat-"]

[[rules]]
id = "slack-webhook-url"
description = "Discovered a Slack Webhook, which could lead to unauthorized message posting and data leakage in Slack channels."
regex = '''(?:https?://)?hooks.slack.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}'''
keywords = ["hooks.slack.com"]

[[rules]]
id = "private-key"
description = "Identified a Private Key, which may compromise cryptographic security and sensitive data encryption."
regex = '''(?i)-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\s\S-]{64,}?KEY(?: BLOCK)?-----'''
keywords = ["-----begin"]

[[rules]]
id = "aws-access-token"
description = "Identified a pattern that may indicate AWS credentials, risking unauthorized cloud resource access and data breaches on AWS platforms."
regex = '''\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b'''
entropy = 3
keywords = ["a3t", "akia", "asia", "abia", "acca"]
[[rules.allowlists]]
regexes = ['''.+EXAMPLE$''']

[[rules]]
id = "stripe-access-token"
description = "Found a Stripe Access Token, posing a risk to payment processing services and sensitive financial data."
regex = '''\b((?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99})(?:[\x60'"\s;]|\\[nr]|$)'''
entropy = 2
keywords = ["sk_test", "sk_live", "sk_prod", "rk_test", "rk_live", "rk_prod"]

[[rules]]
id = "jwt"
description = "Uncovered a JSON Web Token, which may lead to unauthorized access to web applications and sensitive user data."
regex = '''\b(ey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9\/\\_-]{17,}\.(?:[a-zA-Z0-9\/\\_-]{10,}={0,2})?)(?:[\x60'"\s;]|\\[nr]|$)'''
entropy = 3
keywords = ["ey"]

[[rules]]
id = "adafruit-api-key"
description = "Identified a potential Adafruit API Key, which could lead to unauthorized access to Adafruit services and sensitive data exposure."
regex = '''(?i)[\w.-]{0,50}?(?:adafruit)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'"\s=]{0,5}([a-z0-9_-]{32})(?:[\x60'"\s;]|\\[nr]|$)'''
keywords = ["adafruit"]
"#;

#[test]
fn default_gitleaks_rules_convert_and_fire() {
    assert!(is_gitleaks_config(DEFAULT_RULES));
    let (specs, warnings) = parse_gitleaks(DEFAULT_RULES, "gitleaks.toml").unwrap();
    assert_eq!(specs.len(), 8, "{warnings:#?}");
    // Only the global path allowlist is lost.
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].to_string().contains("`paths` are ignored"));
    let key = specs.iter().find(|s| s.id == "private-key").unwrap();
    assert_eq!(key.window, Some(UNBOUNDED_WINDOW));
    let github = specs.iter().find(|s| s.id == "github-pat").unwrap();
    assert_eq!(github.window, None);

    let scanner = scanner(specs);
    let found = |text: &str| findings(&scanner, text);
    let pat = "ghp_R8fK2pLm9QzX4vT7wY1nB6cD3hJ5sG0aE2uI";
    assert_eq!(
        found(&format!("GITHUB_TOKEN={pat}\n")),
        [("github-pat".to_string(), pat.to_string())]
    );
    let aws = "AKIAZ4QX7LMN2PRTW3VB";
    assert_eq!(
        found(&format!("aws_access_key_id = {aws}\n")),
        [("aws-access-token".to_string(), aws.to_string())]
    );
    let stripe = "sk_live_9Xq2LmT7vR4kW8pZ3nB6yC1d";
    assert_eq!(
        found(&format!("stripe.api_key = '{stripe}'\n")),
        [("stripe-access-token".to_string(), stripe.to_string())]
    );
    let ada = "x7k2m9q4w8e3r6t1y5u0i2o7p4a9s3d6";
    assert_eq!(
        found(&format!("ADAFRUIT_IO_KEY = \"{ada}\"\n")),
        [("adafruit-api-key".to_string(), ada.to_string())]
    );
    let body: String =
        "MIIEowIBAAKCAQEAw9vQ7h3kR2pL8mX5tN1bY6cF4jG0sD2aE7uI9oK3lZ8xV5nB\n".repeat(30);
    let pem = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----");
    let hits = found(&format!("key = '''\n{pem}\n'''\n"));
    assert_eq!(hits, [("private-key".to_string(), pem)]);
}

/// A config may point a rule file at any file: errors and warnings name lines and rule ids,
/// never the text.
#[test]
fn messages_never_quote_the_file() {
    let secret = "ghp_R8fK2pLm9QzX4vT7wY1nB6cD3hJ5sG0aE2uI";
    let invalid = [
        // Not TOML.
        format!("GITHUB_TOKEN={secret}\n"),
        // TOML, a gitleaks shape, a value of the wrong type.
        format!("[[rules]]\nid = \"x\"\nregex = '''x'''\nsecretGroup = \"{secret}\"\n"),
        // TOML, a gitleaks shape, a key of the wrong type.
        format!("title = \"t\"\n[[rules]]\n{secret} = 1\nid = [\"x\"]\n"),
    ];
    for text in &invalid {
        let e = parse_gitleaks(text, "leaky.toml").unwrap_err();
        let shown = format!("{e} {e:?}");
        let shown = format!("{shown} {:#}", anyhow::Error::from(e));
        assert!(!shown.contains(secret), "{shown}");
        assert!(
            shown.contains("leaky.toml") && shown.contains("line "),
            "{shown}"
        );
    }
    let lower = secret.to_lowercase();
    let cfg = format!(
        r#"
[extend]
path = "{secret}"
[[rules]]
regex = '''{secret}'''
[[rules]]
id = "k"
regex = '''k_[a-z]{{8}}\pL'''
keywords = ["{lower}"]
[[rules]]
id = "a"
regex = '''a_[a-z]{{8}}'''
keywords = ["{lower}"]
[[rules.allowlists]]
condition = "{secret}"
[[rules.allowlists]]
regexTarget = "{secret}"
regexes = ['''x''']
[[rules.allowlists]]
regexes = ['''(?={secret})''']
"#
    );
    let (_, warnings) = parse_gitleaks(&cfg, "leaky.toml").unwrap();
    assert!(warnings.len() >= 6, "{warnings:#?}");
    for w in &warnings {
        let shown = format!("{w} {w:?}").to_lowercase();
        assert!(!shown.contains(&lower), "{shown}");
    }
    assert!(warnings
        .iter()
        .any(|w| w.line == Some(4) && w.rule.is_none() && w.kind.is_problem()));
}

#[test]
fn regexes_over_re2_limits_are_skipped_as_unconvertible() {
    // Go's regexp (gitleaks) refuses these too; the rule is named, the regex never quoted.
    let text = r#"
[[rules]]
id = "nested-repeat"
regex = '''((a{50}){50}){50}'''
keywords = ["aa"]

[[rules]]
id = "big-count"
regex = '''tok_[a-z]{1001}'''
keywords = ["tok_"]

[[rules]]
id = "fine"
regex = '''tok_[a-z]{1000}'''
keywords = ["tok_"]
"#;
    let (specs, warnings) = parse_gitleaks(text, "gitleaks.toml").unwrap();
    let ids: Vec<_> = specs.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["fine"]);
    let problems: Vec<String> = warnings
        .iter()
        .filter(|w| w.kind == RuleWarningKind::Unconvertible)
        .map(|w| w.to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("`nested-repeat`") && problems[0].contains("multiply"));
    assert!(problems[1].contains("`big-count`") && problems[1].contains("over 1000"));
    assert!(problems
        .iter()
        .all(|p| !p.contains("{50}") && !p.contains("1001}")));
}

#[test]
fn trawl_regex_limits_spare_the_built_in_rules_only() {
    assert!(RuleSet::builtin().is_ok());
    assert!(compile_regex("x{1000}").is_ok());
    assert!(compile_regex("x{1001}").is_err());
    assert!(compile_regex("(?:(?:x{10}){10}){10}").is_ok());
    assert!(compile_regex("(?:(?:x{10}){10}){11}").is_err());
    assert!(
        compile_regex(r"\{1001\}[{]").is_ok(),
        "literal braces are not counts"
    );
    assert!(compile_regex("(?:x{10})?{10}").is_ok());
    assert!(compile_regex("(?:x{10})?{101}").is_err());
    let deep = format!("{}x{}", "(?:".repeat(120), ")".repeat(120));
    assert!(compile_regex(&deep).is_err());
}
