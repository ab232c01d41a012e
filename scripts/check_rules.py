#!/usr/bin/env python3
"""Quick approximate check of rule files while the Rust scanner is not at hand.

Mimics the scanner (keywords, windows, regex, entropy, github checksum, placeholder filter,
allowlists) with Python's `re`. The authoritative check is the Rust test suite
(`trawl rules check FILE`); this one only catches most mistakes early.
  check_rules.py rules/foo.toml [...]
"""
import base64, binascii, json, math, re, sys, tomllib
from collections import Counter

ASSIGN = (r"""(?:[\x60"'\])]{0,2}[ \t]{0,4}(?:(?::[ \t]{0,4}[A-Za-z_][\w.<>\[\]|?]{0,30}[ \t]{0,4})?"""
          r"""(?:=|:=|=>|\|\|=|\?\?=|==)|:|[ \t]|,|>|\()[ \t\r\n]{0,6}"""
          r"""(?:[\x60"']?(?i:bearer|token|basic)[ \t]+)?(?:[@rbuf]?[\x60"'])?)""")
ASSIGN_STRICT = (r"""(?:[\x60"'\])]{0,2}[ \t]{0,4}(?:(?:(?::[ \t]{0,4}[A-Za-z_][\w.<>\[\]|?]{0,30}[ \t]{0,4})?"""
                 r"""(?:=|:=|=>|\|\|=|\?\?=|==)|:|>)[ \t\r\n]{0,6}"""
                 r"""(?:[\x60"']?(?i:bearer|token|basic)[ \t]+)?(?:[@rbuf]?[\x60"'])?"""
                 r"""|(?:,|\(|[ \t])[ \t\r\n]{0,6}[@rbuf]?[\x60"']))""")
END = r"""(?:[\x60"'\s,;)\]}<&]|\\[nrt"']|$)"""
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CATS = set("""ai.model-api ai.model-registry ai.vector-db ai.experiment-tracker ai.data-platform cloud vcs ci
package-registry container-registry messaging payments saas monitoring database private-key jwt generic""".split())
WORDS = ["example", "xxxx", "****", "...", "\u2026", "<", ">", "${", "{{", "%(", "$(", "your_", "your-", "yourkey",
         "placeholder", "changeme", "redacted", "dummy", "insert", "replace_me", "sample", "notreal", "fake_"]


def expand(rx):
    return rx.replace("{{assign}}", ASSIGN).replace("{{assign_strict}}", ASSIGN_STRICT).replace("{{end}}", END)


def entropy(s):
    c = Counter(s)
    return -sum(n / len(s) * math.log2(n / len(s)) for n in c.values()) if s else 0.0


def b62decode(s):
    n = 0
    for ch in s:
        n = n * 62 + B62.index(ch)
    return n


def github_checksum(s):
    body = s.split("_")[-1]
    if len(body) <= 6 or not body.isalnum():
        return False
    return binascii.crc32(body[:-6].encode()) == b62decode(body[-6:])


def jwt_ok(s):
    parts = s.split(".")
    if len(parts) != 3:
        return False
    try:
        dec = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]]
    except Exception:
        return False
    return all(isinstance(d, dict) for d in dec) and "alg" in dec[0]


def placeholder(s):
    low = s.lower()
    if any(w in low for w in WORDS):
        return True
    if len(set(s)) == 1 or (len(s) > 8 and len(set(s)) < 4):
        return True
    if re.search(r"(.)\1{5}", s):
        return True
    for i in range(len(s) - 5):
        if all(ord(s[i + k + 1]) - ord(s[i + k]) == 1 for k in range(5)):
            return True
    return False


def findings(rule, text, rx):
    kws = [k.lower() for k in rule.get("keywords", [])]
    low = text.lower()
    windows = []
    if kws:
        for k in kws:
            for m in re.finditer(re.escape(k), low):
                windows.append((max(0, m.start() - 256), min(len(text), m.end() + rule.get("window", 512))))
    else:
        windows.append((0, len(text)))
    out = []
    for a, b in windows:
        for m in rx.finditer(text, a, b):
            sec = m.group("secret") if "secret" in rx.groupindex and m.group("secret") is not None else m.group(0)
            if entropy(sec) < rule.get("entropy", 0):
                continue
            v = rule.get("validate")
            if v == "github-checksum" and not github_checksum(sec):
                continue
            if v == "jwt" and not jwt_ok(sec):
                continue
            if placeholder(sec):
                continue
            al = rule.get("allowlist", {})
            if any(re.search(p, sec) for p in al.get("regexes", [])):
                continue
            if any(w.lower() in sec.lower() for w in al.get("stopwords", [])):
                continue
            out.append(sec)
    return out


def main():
    bad = 0
    total = 0
    ids = set()
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        for rule in data.get("rules", []):
            total += 1
            rid = rule.get("id", "?")
            def fail(msg):
                nonlocal bad
                bad += 1
                print(f"{path}: {rid}: {msg}")
            for field in ("id", "name", "category", "severity", "regex", "examples", "negative_examples"):
                if field not in rule:
                    fail(f"missing {field}")
            if rid in ids:
                fail("duplicate id")
            ids.add(rid)
            if rule.get("category") not in CATS:
                fail(f"unknown category {rule.get('category')}")
            if rule.get("severity") not in ("critical", "high", "medium", "low", "info"):
                fail("bad severity")
            if any(k != k.lower() for k in rule.get("keywords", [])):
                fail("keywords must be lowercase")
            try:
                rx = re.compile(expand(rule.get("regex", "")))
            except re.error as e:
                fail(f"regex error: {e}")
                continue
            if not rule.get("examples") or not rule.get("negative_examples"):
                fail("needs examples and negative_examples")
            for ex in rule.get("examples", []):
                if not findings(rule, ex, rx):
                    fail(f"example not found: {ex!r}")
            for ex in rule.get("negative_examples", []):
                got = findings(rule, ex, rx)
                if got:
                    fail(f"negative example reported {got!r}: {ex!r}")
    print(f"{total} rules checked, {bad} problems")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
