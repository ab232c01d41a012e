use super::opcodes::op_name;
use super::policy::{CODE, FILES, INDIRECTION, NESTED, NETWORK, PROCESS};
use super::vm::{MAX_ERRORS, UNRESOLVED};
use super::*;

// Test vectors from CPython 3.11 `pickle.dumps` (dumped, never loaded).
/// `os.system("echo hi")` via `__reduce__`, protocol 0.
const OS_P0: &[u8] = b"cposix\nsystem\np0\n(Vecho hi\np1\ntp2\nRp3\n.";
const OS_P2: &[u8] = b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.";
const OS_P4: &[u8] = b"\x80\x04\x95\"\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x07echo hi\x94\x85\x94R\x94.";
const OS_P5: &[u8] = b"\x80\x05\x95\"\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x07echo hi\x94\x85\x94R\x94.";
/// `subprocess.Popen(["id"])`, protocol 2 (`fix_imports` renames it `commands.Popen`).
const POPEN_P2: &[u8] =
    b"\x80\x02ccommands\nPopen\nq\x00]q\x01X\x02\x00\x00\x00idq\x02a\x85q\x03Rq\x04.";
const POPEN_P4: &[u8] = b"\x80\x04\x95$\x00\x00\x00\x00\x00\x00\x00\x8c\nsubprocess\x94\x8c\x05Popen\x94\x93\x94]\x94\x8c\x02id\x94a\x85\x94R\x94.";
const EVAL_P4: &[u8] = b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x031+1\x94\x85\x94R\x94.";
const EXEC_P0: &[u8] = b"c__builtin__\nexec\np0\n(Vprint(1)\np1\ntp2\nRp3\n.";
/// `OrderedDict(weight=1.5, token="hf_abc")`.
const OD_P0: &[u8] =
    b"ccollections\nOrderedDict\np0\n(tRp1\nVweight\np2\nF1.5\nsVtoken\np3\nVhf_abc\np4\ns.";
const OD_P4: &[u8] = b"\x80\x04\x95G\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(\x8c\x06weight\x94G?\xf8\x00\x00\x00\x00\x00\x00\x8c\x05token\x94\x8c\x06hf_abc\x94u.";
/// `{"a": [1, 2], "b": "x"}`, protocol 0.
const DICT_P0: &[u8] = b"(dp0\nVa\np1\n(lp2\nI1\naI2\nasVb\np3\nVx\np4\ns.";
/// `["it's", 'q"t\n\\']`, protocol 1: binary, no PROTO.
const LIST_P1: &[u8] = b"]q\x00(X\x04\x00\x00\x00it'sq\x01X\x05\x00\x00\x00q\"t\n\\q\x02e.";
/// A torch-like state dict (tensor through BINPERSID, numpy array, note), protocol 2, made
/// with stand-in modules.
const CHECKPOINT_P2: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x02tq\x08QK\x00K\x02\x85q\tK\x01\x85q\n\x89h\x00)Rq\x0btq\x0cRq\rX\x03\x00\x00\x00arrq\x0ecnumpy.core.multiarray\n_reconstruct\nq\x0fcnumpy\nndarray\nq\x10K\x00\x85q\x11c_codecs\nencode\nq\x12X\x01\x00\x00\x00bq\x13X\x06\x00\x00\x00latin1q\x14\x86q\x15Rq\x16\x87q\x17Rq\x18(K\x01h\tcnumpy\ndtype\nq\x19X\x02\x00\x00\x00f4q\x1a\x89\x88\x87q\x1bRq\x1c(K\x03X\x01\x00\x00\x00<q\x1dNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\x1eb\x89h\x12X\t\x00\x00\x00\x00\x00\xc2\x80?\x00\x00\x00@q\x1fh\x14\x86q Rq!tq\"bX\x04\x00\x00\x00noteq#X\x0b\x00\x00\x00api_key=abcq$u.";
/// The same at protocol 4: `numpy.dtype` takes its module string from the memo.
const CHECKPOINT_P4: &[u8] = b"\x80\x04\x95>\x01\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(\x8c\x01w\x94\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_tensor_v2\x94\x93\x94((\x8c\x07storage\x94\x8c\x05torch\x94\x8c\x0cFloatStorage\x94\x93\x94\x8c\x010\x94\x8c\x03cpu\x94K\x02t\x94QK\x00K\x02\x85\x94K\x01\x85\x94\x89h\x02)R\x94t\x94R\x94\x8c\x03arr\x94\x8c\x15numpy.core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01h\x0fh\x18\x8c\x05dtype\x94\x93\x94\x8c\x02f4\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b\x89C\x08\x00\x00\x80?\x00\x00\x00@\x94t\x94b\x8c\x04note\x94\x8c\x0bapi_key=abc\x94u.";
/// Hand-made: `STACK_GLOBAL` whose operands come back from the memo, with a `BINPUT` to
/// index 5 first so that `MEMOIZE` stores "posix" at index 1 (`len(memo)`), not 0.
const MEMO_MIX: &[u8] = b"\x80\x04\x8c\x0bcollectionsq\x05\x8c\x05posix\x94\x8c\x06system\x94\x8c\x0bOrderedDict\x94\x30\x30\x30\x30h\x01h\x02\x93\x8c\x02id\x85R.";

fn run(data: &[u8]) -> PickleReport {
    analyze(data, &PickleLimits::default())
}

fn import<'r>(report: &'r PickleReport, module: &str, name: &str) -> &'r PickleImport {
    report
        .imports
        .iter()
        .find(|i| i.module == module && i.name == name)
        .unwrap_or_else(|| panic!("no import {module}.{name} in {:?}", report.imports))
}

fn strings(report: &PickleReport) -> Vec<&[u8]> {
    report.strings.iter().map(|s| s.value.as_slice()).collect()
}

fn all_valid() -> Vec<&'static [u8]> {
    vec![
        OS_P0,
        OS_P2,
        OS_P4,
        OS_P5,
        POPEN_P2,
        POPEN_P4,
        EVAL_P4,
        EXEC_P0,
        OD_P0,
        OD_P4,
        DICT_P0,
        LIST_P1,
        CHECKPOINT_P2,
        CHECKPOINT_P4,
        MEMO_MIX,
    ]
}

#[test]
fn valid_pickles_walk_cleanly() {
    for data in all_valid() {
        assert!(looks_like_pickle(data), "{data:?}");
        let report = run(data);
        assert_eq!(report.pickles, 1, "{data:?}");
        assert!(report.errors.is_empty(), "{data:?}: {:?}", report.errors);
        assert!(!report.truncated);
    }
}

#[test]
fn os_system_at_every_protocol() {
    for data in [OS_P0, OS_P2, OS_P4, OS_P5] {
        let report = run(data);
        assert_eq!(report.imports.len(), 1, "{data:?}");
        let system = import(&report, "posix", "system");
        assert!(system.called);
        assert_eq!(
            system.verdict,
            ImportVerdict::Dangerous("process execution")
        );
        assert_eq!(strings(&report).last(), Some(&b"echo hi".as_slice()));
    }
    assert_eq!(run(OS_P0).imports[0].offset, 0);
    assert_eq!(run(OS_P4).imports[0].offset, 28);
}

#[test]
fn subprocess_and_eval_exec() {
    for (data, module, name, family) in [
        (POPEN_P2, "commands", "Popen", "process execution"),
        (POPEN_P4, "subprocess", "Popen", "process execution"),
        (EVAL_P4, "builtins", "eval", "code execution"),
        (EXEC_P0, "__builtin__", "exec", "code execution"),
    ] {
        let report = run(data);
        let found = import(&report, module, name);
        assert!(found.called, "{module}.{name}");
        assert_eq!(found.verdict, ImportVerdict::Dangerous(family));
    }
}

#[test]
fn stack_global_through_memoize_and_binget() {
    let report = run(MEMO_MIX);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.imports.len(), 1);
    let system = import(&report, "posix", "system");
    assert!(system.called);
    assert!(matches!(system.verdict, ImportVerdict::Dangerous(_)));
}

#[test]
fn benign_checkpoints_have_nothing_dangerous() {
    for data in [OD_P0, OD_P4, DICT_P0, CHECKPOINT_P2, CHECKPOINT_P4] {
        let report = run(data);
        for i in &report.imports {
            assert!(
                !matches!(i.verdict, ImportVerdict::Dangerous(_)),
                "{}.{}",
                i.module,
                i.name
            );
        }
    }
    let report = run(CHECKPOINT_P4);
    let names: Vec<String> = report
        .imports
        .iter()
        .map(|i| format!("{}.{}", i.module, i.name))
        .collect();
    assert_eq!(
        names,
        [
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor_v2",
            "torch.FloatStorage",
            "numpy.core.multiarray._reconstruct",
            "numpy.ndarray",
            "numpy.dtype",
        ]
    );
    assert!(report
        .imports
        .iter()
        .all(|i| i.verdict == ImportVerdict::Safe));
    assert!(import(&report, "numpy", "dtype").called);
    assert!(strings(&report).contains(&b"api_key=abc".as_slice()));
    let report = run(CHECKPOINT_P2);
    assert_eq!(
        import(&report, "_codecs", "encode").verdict,
        ImportVerdict::Safe
    );
    assert!(strings(&report).contains(&b"api_key=abc".as_slice()));
}

#[test]
fn strings_carry_their_offsets() {
    let report = run(OS_P2);
    assert_eq!(
        report.strings,
        [PickleString {
            offset: 18,
            value: b"echo hi".to_vec(),
            key: None,
        }]
    );
    let report = run(OD_P0);
    let found: Vec<(usize, &[u8])> = report
        .strings
        .iter()
        .map(|s| (s.offset, s.value.as_slice()))
        .collect();
    assert_eq!(
        found,
        [
            (34, b"weight".as_slice()),
            (51, b"token".as_slice()),
            (61, b"hf_abc".as_slice())
        ]
    );
    for s in &report.strings {
        assert_eq!(OD_P0[s.offset], b'V');
    }
}

#[test]
fn protocol_0_string_escapes_and_unicode() {
    let data =
        b"(lp0\nS'it\\'s'\np1\naS\"a\\nb\\x41\\101\\\\\"\np2\naV\\u00e9t\\u00e9 \\\\u0041\np3\na.";
    let report = run(data);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        strings(&report),
        [
            b"it's".as_slice(),
            b"a\nbAA\\".as_slice(),
            "\u{e9}t\u{e9} \\\\u0041".as_bytes(),
        ]
    );
    let report = run(LIST_P1);
    assert_eq!(
        strings(&report),
        [b"it's".as_slice(), b"q\"t\n\\".as_slice()]
    );
}

#[test]
fn long_strings_are_cut_to_max_string() {
    let limits = PickleLimits {
        max_string: 4,
        ..PickleLimits::default()
    };
    let report = analyze(OD_P0, &limits);
    assert_eq!(
        strings(&report),
        [b"weig".as_slice(), b"toke".as_slice(), b"hf_a".as_slice()]
    );
}

#[test]
fn concatenated_pickles_are_all_walked() {
    let data = [OD_P4, OS_P0].concat();
    let report = run(&data);
    assert_eq!(report.pickles, 2);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(import(&report, "posix", "system").offset, OD_P4.len());
    // Legacy PyTorch layout: small pickles, then raw storage bytes that are left alone.
    let data = [
        OS_P2,
        CHECKPOINT_P2,
        b"\x00\x10\x00\x00\x00\x00\x00\x00\xff\xfe",
    ]
    .concat();
    let report = run(&data);
    assert_eq!(report.pickles, 2);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(!report.truncated);
}

#[test]
fn truncated_stream_keeps_what_came_before() {
    // Cut right after STACK_GLOBAL and its MEMOIZE.
    let end = memchr::memmem::find(OS_P4, b"\x93\x94").map_or(0, |i| i + 2);
    let cut = &OS_P4[..end];
    let report = run(cut);
    assert!(report.truncated);
    let last = report.errors.last().map_or("", String::as_str);
    assert!(last.contains("ends inside pickle 1"), "{:?}", report.errors);
    let system = import(&report, "posix", "system");
    assert!(!system.called);
    assert!(matches!(system.verdict, ImportVerdict::Dangerous(_)));
    // Cut inside a string: the part that is there is still collected.
    let report = run(&OS_P2[..26]);
    assert!(report.truncated);
    assert_eq!(strings(&report), [b"ech".as_slice()]);
    // A payload followed by garbage: reported, with the error.
    let data = [&OS_P2[..OS_P2.len() - 1], b"\xff\xff"].concat();
    let report = run(&data);
    assert!(!report.truncated);
    assert!(import(&report, "posix", "system").called);
    assert!(
        report.errors[0].contains("unknown opcode 0xff"),
        "{:?}",
        report.errors
    );
}

#[test]
fn sniffing_claims_pickles_and_rejects_the_rest() {
    for data in [
        b"(dp0\n".as_slice(),
        b"(lp0\nS'a'\np1\na.",
        b"cos\nsystem\n(S'ls'\ntR.",
        b"\x80\x02}q\x00.",
        b"\x80\x05",
        b"N.",
        b"N.(dp0\n",
        b"(lp0\nV<a prefix that ends inside a line",
        b"]q\x00(X\x00\x00\x01\x00<a prefix that ends inside a string",
    ] {
        assert!(looks_like_pickle(data), "{data:?}");
    }
    // A payload behind any number of constants is still found, as CPython would load it.
    let hidden = [
        b"Va\n".repeat(5000).as_slice(),
        b"N".repeat(100).as_slice(),
        OS_P0,
    ]
    .concat();
    assert!(looks_like_pickle(&hidden));
    let hidden = [b"N.".as_slice(), &hidden].concat();
    let report = run(&hidden);
    assert_eq!(report.pickles, 2);
    assert!(import(&report, "posix", "system").called);
    for data in [
        b"".as_slice(),
        b"Hello, world!\nThis is a plain text file.\n",
        b"import os\nos.system('ls')\n",
        b"def f(x):\n    return x\n",
        b"lorem ipsum dolor sit amet",
        b"cat\ndog\nbird\n",
        b"{\"a\": 1}\n",
        b"(foo)",
        b"0123",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b"PK\x03\x04\x14\x00\x00\x00",
        b"\x7fELF\x02\x01\x01",
        b"\x80\x07}.",
        b"\x80\x02\xff",
        b"\x80\x03a\xaf",
        &[b"V".as_slice(), &[b'x'; 5000], b"\n"].concat(),
        b"S'unterminated\n",
        b"Git 1.7.12.2 Release Notes\n",
        b"GIT v1.6.2.1 Release Notes\n",
        b"Package: nodejs\nPin: origin deb.nodesource.com\nPin-Priority: 600\n",
        &b"PEM,100,BAD_BASE64_DECODE\n".repeat(20),
        &b"Version 1\n".repeat(20),
    ] {
        assert!(!looks_like_pickle(data), "{data:?}");
    }
}

#[test]
fn calls_are_attributed_per_opcode() {
    // INST, OBJ, NEWOBJ, NEWOBJ_EX, BUILD on a global, and a global never called.
    let cases: [(&[u8], bool); 6] = [
        (b"(S'ls'\nios\nsystem\n.", true),
        (b"(cos\nsystem\nS'ls'\no.", true),
        (b"\x80\x02cos\nsystem\n)\x81.", true),
        (b"\x80\x04cos\nsystem\n)}\x92.", true),
        (b"\x80\x02cos\nsystem\n}b.", true),
        (b"\x80\x02cos\nsystem\n.", false),
    ];
    for (data, called) in cases {
        let report = run(data);
        assert!(report.errors.is_empty(), "{data:?}: {:?}", report.errors);
        assert_eq!(import(&report, "os", "system").called, called, "{data:?}");
    }
    // Called through the memo, long after the import.
    let report = run(b"\x80\x02cos\nsystem\nq\x070N)h\x07)R0.");
    assert!(import(&report, "os", "system").called);
}

#[test]
fn unresolved_and_extension_imports() {
    // STACK_GLOBAL on values that are not constant strings.
    let report = run(b"\x80\x04NN\x93).");
    let found = import(&report, UNRESOLVED, UNRESOLVED);
    assert_eq!(found.verdict, ImportVerdict::Dangerous(INDIRECTION));
    let report = run(b"\x80\x02\x82\x05)R.");
    let found = import(&report, "<extension>", "5");
    assert!(found.called);
    assert_eq!(found.verdict, ImportVerdict::Unknown);
}

#[test]
fn every_opcode_is_handled() {
    let data = b"\x80\x05\x95\x00\x00\x00\x00\x00\x00\x00\x00(N\x88\x89K\x01M\x02\x00J\x03\x00\x00\x00I4\nL5L\nF1.5\nG\x00\x00\x00\x00\x00\x00\x00\x00\x8a\x01\x01\x8b\x01\x00\x00\x00\x01T\x01\x00\x00\x00aU\x01bV\xe9\nX\x01\x00\x00\x00cB\x01\x00\x00\x00dC\x01e\x8c\x01f\x8d\x01\x00\x00\x00\x00\x00\x00\x00g\x8e\x01\x00\x00\x00\x00\x00\x00\x00h\x96\x01\x00\x00\x00\x00\x00\x00\x00i\x98\x97\x982\x30\x8f(K\x01\x90\x94(K\x02\x91\x94tp9\ng9\nr\x00\x01\x00\x00j\x00\x01\x00\x00\x85\x86N\x87(l(1]}(K\x01K\x02u(K\x01K\x02dK\x01K\x02s(K\x01e)aPpid\nQ00.";
    let report = run(data);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        strings(&report),
        [
            b"a".as_slice(),
            b"b",
            "\u{e9}".as_bytes(),
            b"c",
            b"d",
            b"e",
            b"f",
            b"g",
            b"h",
            b"i",
            b"pid"
        ]
    );
}

#[test]
fn memo_limit_degrades_to_unresolved() {
    let limits = PickleLimits {
        max_memo: 1,
        ..PickleLimits::default()
    };
    let report = analyze(MEMO_MIX, &limits);
    assert!(report.errors.iter().any(|e| e.contains("memo limit")));
    let found = import(&report, UNRESOLVED, UNRESOLVED);
    assert_eq!(found.verdict, ImportVerdict::Dangerous(INDIRECTION));
    assert!(found.called);
}

#[test]
fn limits_stop_hostile_streams() {
    let limits = PickleLimits {
        max_stack: 10,
        ..PickleLimits::default()
    };
    let report = analyze(&[b'N'; 100], &limits);
    assert!(report.truncated);
    assert!(report.errors[0].contains("stack limit"));
    let report = analyze(&[b'('; 100], &limits);
    assert!(report.truncated);
    let limits = PickleLimits {
        max_ops: 5,
        ..PickleLimits::default()
    };
    let report = analyze(&[OD_P0, OD_P0].concat(), &limits);
    assert!(report.truncated);
    assert!(report.errors[0].contains("opcode limit"));
}

#[test]
fn ten_megabytes_of_opcodes_finish_quickly() {
    // APPEND without a list: one anomaly per opcode, errors capped.
    let mut data = b"\x80\x04]".to_vec();
    data.extend(std::iter::repeat_n(*b"Na", 4_900_000).flatten());
    data.push(b'.');
    let start = std::time::Instant::now();
    let report = run(&data);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    assert!(report.errors.is_empty(), "{:?}", &report.errors[..1]);
    // Underflows everywhere: errors stay bounded.
    let data = vec![b'a'; 10 << 20];
    let report = run(&data);
    assert_eq!(report.errors.len(), MAX_ERRORS + 2);
    assert!(report.truncated);
    // Millions of one-byte strings.
    let mut data = b"\x80\x04".to_vec();
    data.extend(std::iter::repeat_n(*b"\x8c\x01x0", 2_000_000).flatten());
    let report = run(&data);
    assert_eq!(report.strings.len(), 2_000_000);
}

#[test]
fn judge_families() {
    use ImportVerdict::{Dangerous, Safe, Unknown};
    let cases = [
        ("posix", "system", Dangerous(PROCESS)),
        ("nt", "system", Dangerous(PROCESS)),
        ("os", "system", Dangerous(PROCESS)),
        ("os.path", "join", Dangerous(PROCESS)),
        ("subprocess", "Popen.__init__", Dangerous(PROCESS)),
        ("asyncio", "create_subprocess_shell", Dangerous(PROCESS)),
        ("asyncio.subprocess", "Process", Dangerous(PROCESS)),
        ("pip", "main", Dangerous(PROCESS)),
        ("builtins", "eval", Dangerous(CODE)),
        ("__builtin__", "getattr", Dangerous(CODE)),
        ("builtins", "__import__", Dangerous(CODE)),
        ("types", "CodeType", Dangerous(CODE)),
        ("numpy.f2py", "compile", Dangerous(CODE)),
        ("torch.jit", "load", Dangerous(CODE)),
        ("torch", "jit.load", Dangerous(CODE)),
        ("torch._dynamo.guards", "GuardBuilder", Dangerous(CODE)),
        ("runpy", "run_path", Dangerous(CODE)),
        ("importlib", "import_module", Dangerous(INDIRECTION)),
        ("operator", "attrgetter", Dangerous(INDIRECTION)),
        ("_operator", "methodcaller", Dangerous(INDIRECTION)),
        ("functools", "partial", Dangerous(INDIRECTION)),
        ("pkgutil", "resolve_name", Dangerous(INDIRECTION)),
        ("pydoc", "locate", Dangerous(INDIRECTION)),
        ("pydoc", "pipepager", Dangerous(PROCESS)),
        ("sys", "modules", Dangerous(INDIRECTION)),
        (
            "collections",
            "OrderedDict.__init__.__globals__",
            Dangerous(INDIRECTION),
        ),
        ("pickle", "loads", Dangerous(NESTED)),
        ("_pickle", "loads", Dangerous(NESTED)),
        ("cPickle", "load", Dangerous(NESTED)),
        ("dill", "loads", Dangerous(NESTED)),
        ("joblib", "load", Dangerous(NESTED)),
        ("torch", "load", Dangerous(NESTED)),
        ("torch.storage", "_load_from_bytes", Dangerous(NESTED)),
        ("numpy", "load", Dangerous(NESTED)),
        ("torch", "serialization.pickle.loads", Dangerous(NESTED)),
        ("collections", "os.system", Dangerous(PROCESS)),
        ("_io", "FileIO", Dangerous(FILES)),
        ("io", "open", Dangerous(FILES)),
        ("shutil", "rmtree", Dangerous(FILES)),
        ("logging", "FileHandler", Dangerous(FILES)),
        ("logging.handlers", "HTTPHandler", Dangerous(NETWORK)),
        ("socket", "create_connection", Dangerous(NETWORK)),
        ("http.client", "HTTPSConnection", Dangerous(NETWORK)),
        ("httplib", "HTTPConnection", Dangerous(NETWORK)),
        ("urllib.request", "urlopen", Dangerous(NETWORK)),
        ("requests", "get", Dangerous(NETWORK)),
        ("collections", "OrderedDict", Safe),
        ("torch._utils", "_rebuild_tensor_v2", Safe),
        ("torch._utils", "_rebuild_parameter", Safe),
        ("torch", "FloatStorage", Safe),
        ("torch", "BFloat16Storage", Safe),
        ("torch.storage", "UntypedStorage", Safe),
        ("torch", "bfloat16", Safe),
        ("torch.serialization", "_get_layout", Safe),
        ("torch", "device", Safe),
        ("torch", "Size", Safe),
        ("torch.nn.modules.linear", "Linear", Safe),
        ("numpy.core.multiarray", "_reconstruct", Safe),
        ("numpy._core.multiarray", "_reconstruct", Safe),
        ("numpy.core.multiarray", "scalar", Safe),
        ("numpy", "ndarray", Safe),
        ("numpy", "dtype", Safe),
        ("_codecs", "encode", Safe),
        ("builtins", "set", Safe),
        ("__builtin__", "frozenset", Safe),
        ("builtins", "slice", Safe),
        ("builtins", "complex", Safe),
        ("builtins", "bytearray", Safe),
        ("joblib.numpy_pickle", "NumpyArrayWrapper", Safe),
        ("sklearn.linear_model._logistic", "LogisticRegression", Safe),
        ("sklearn.tree._tree", "Tree", Safe),
        ("sklearn.utils._testing", "TempMemmap", Unknown),
        ("copyreg", "_reconstructor", Unknown),
        ("copy_reg", "__newobj__", Unknown),
        ("collections", "OrderedDict.fromkeys", Unknown),
        ("__main__", "MyModel", Unknown),
        ("torch.profiler", "profile", Unknown),
        ("posixpath", "join", Unknown),
        ("", "", Unknown),
    ];
    for (module, name, verdict) in cases {
        assert_eq!(judge(module, name), verdict, "{module}.{name}");
    }
}

use crate::content::test_rng::XorShift;

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let limits = PickleLimits {
        max_ops: 100_000,
        max_stack: 1_000,
        max_memo: 100,
        max_string: 64,
    };
    // Bytes drawn mostly from opcodes, so the walk goes deep.
    let opcodes: Vec<u8> = (0..=255u8).filter(|&b| op_name(b).is_some()).collect();
    for round in 0..2_000 {
        let len = rng.below(300);
        let data: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                0 => rng.next() as u8,
                1 => b"0123456789\n'\"\\"[rng.below(14)],
                _ => opcodes[rng.below(opcodes.len())],
            })
            .collect();
        let data = if round % 2 == 0 {
            [b"\x80\x04".as_slice(), &data].concat()
        } else {
            data
        };
        let report = analyze(&data, &limits);
        assert!(report.errors.len() <= MAX_ERRORS + 1);
        looks_like_pickle(&data);
    }
    for base in all_valid() {
        for _ in 0..300 {
            let mut data = base.to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(data.len());
                match rng.below(4) {
                    0 => data[at] = rng.next() as u8,
                    1 => data[at] = opcodes[rng.below(opcodes.len())],
                    2 => {
                        data.remove(at);
                    }
                    _ => data.truncate(at),
                }
                if data.is_empty() {
                    break;
                }
            }
            analyze(&data, &limits);
            analyze(&data, &PickleLimits::default());
            looks_like_pickle(&data);
        }
    }
}

#[test]
fn dict_values_keep_their_string_keys() {
    // {"aws_secret_access_key": "v1", "n": 3, "k2": "v2"} in protocol 2 (SETITEMS), and a
    // protocol-0 dict (SETITEM) as `pickle.dumps(d, 0)` writes it.
    let mut p2 = b"\x80\x02}(".to_vec();
    for s in ["aws_secret_access_key", "v1"] {
        p2.push(b'X');
        p2.extend((s.len() as u32).to_le_bytes());
        p2.extend(s.as_bytes());
    }
    p2.extend(b"X\x01\x00\x00\x00nK\x03");
    for s in ["k2", "v2"] {
        p2.push(b'X');
        p2.extend((s.len() as u32).to_le_bytes());
        p2.extend(s.as_bytes());
    }
    p2.extend(b"u.");
    let p0 = b"(dp0\nVWANDB_API_KEY\np1\nVv3\np2\ns.";
    for (data, want) in [
        (&p2[..], vec![("v1", "aws_secret_access_key"), ("v2", "k2")]),
        (&p0[..], vec![("v3", "WANDB_API_KEY")]),
    ] {
        let report = run(data);
        let keyed: Vec<(&[u8], &str)> = report
            .strings
            .iter()
            .filter_map(|s| Some((s.value.as_slice(), s.key.as_deref()?)))
            .collect();
        let want: Vec<(&[u8], &str)> = want.iter().map(|(v, k)| (v.as_bytes(), *k)).collect();
        assert_eq!(keyed, want);
    }
}

#[test]
fn training_args_imports_are_allowed_and_nothing_near_them() {
    // What transformers 5.25 / accelerate 1.16 pickle into training_args.bin.
    for (module, name) in [
        ("transformers.training_args", "TrainingArguments"),
        ("transformers.training_args", "OptimizerNames"),
        ("transformers.trainer_utils", "SchedulerType"),
        ("transformers.trainer_utils", "IntervalStrategy"),
        ("transformers.trainer_utils", "SaveStrategy"),
        ("transformers.trainer_utils", "HubStrategy"),
        ("transformers.trainer_pt_utils", "AcceleratorConfig"),
        ("accelerate.state", "PartialState"),
        ("accelerate.utils.dataclasses", "DistributedType"),
        ("torch", "device"),
    ] {
        assert_eq!(judge(module, name), ImportVerdict::Safe, "{module}.{name}");
    }
    // Only those: other names of the same modules stay unknown.
    for (module, name) in [
        ("transformers.training_args", "TrainingArguments.__init__"),
        ("transformers.trainer_utils", "set_seed"),
        ("transformers", "pipeline"),
        ("accelerate.state", "AcceleratorState"),
        ("accelerate.utils.dataclasses", "DeepSpeedPlugin"),
    ] {
        assert_ne!(judge(module, name), ImportVerdict::Safe, "{module}.{name}");
    }
}
