//! Pickles, parsed statically: string constants and imported callables, never executed.
//!
//! [`analyze`] walks the opcode stream of protocols 0–5 with an emulated stack and memo, so an
//! import is resolved however its module and name strings reach `STACK_GLOBAL` (directly or
//! through `PUT`/`MEMOIZE` and later `GET`s), and the opcodes that call it (`REDUCE`, `OBJ`,
//! `NEWOBJ`, `NEWOBJ_EX`, `INST`, `BUILD`) are attributed to it. Pickles stored back to back are
//! all walked; a truncated or malformed stream still reports what came before the break, because
//! a real unpickler has already run that part. [`judge`] classifies an import against an allowlist
//! of what honest checkpoints use and a blocklist by family; anything else is
//! [`ImportVerdict::Unknown`]. Nothing is imported or called, and [`PickleLimits`] bound time and
//! memory on hostile input.
//!
//! The emulation is lenient where CPython would raise (a stack underflow, a missing memo entry):
//! the anomaly goes to [`PickleReport::errors`] and the walk goes on. CPython stops at such a
//! point, so going on can only report more than a real load would reach, never less.

use std::collections::HashMap;
use std::rc::Rc;

/// Limits that bound time and memory on hostile streams.
///
/// Reaching `max_ops` or `max_stack` stops the walk and marks the report
/// [`truncated`](PickleReport::truncated). A full memo does not stop it: later entries are not
/// remembered, and an import named through one of them is reported as unresolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickleLimits {
    /// Opcodes decoded over the whole input, all pickles together.
    pub max_ops: usize,
    /// Values and marks on the emulated stack at once.
    pub max_stack: usize,
    /// Entries in the emulated memo of one pickle.
    pub max_memo: usize,
    /// Bytes kept of one string constant; longer constants are cut to this length.
    pub max_string: usize,
}

impl Default for PickleLimits {
    fn default() -> Self {
        PickleLimits {
            // Every opcode takes at least one byte, so this bounds the input walked rather than
            // the time per byte; 10 MB of honest one-byte opcodes must not hit it.
            max_ops: 100_000_000,
            max_stack: 1_000_000,
            max_memo: 1_000_000,
            max_string: 64 << 20,
        }
    }
}

/// A string or bytes constant found in a pickle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleString {
    /// Byte offset in the input of the opcode that holds the constant.
    pub offset: usize,
    /// The decoded value: UTF-8 for text opcodes, raw bytes for bytes and protocol-0/1 strings
    /// (escapes of protocol-0 `STRING`, `\u` escapes of `UNICODE` decoded).
    pub value: Vec<u8>,
}

/// A callable or class that the pickle imports when loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleImport {
    /// Byte offset of the first opcode that imports it (`GLOBAL`, `INST`, `STACK_GLOBAL`, `EXT*`).
    pub offset: usize,
    /// Module as the pickle names it (`posix`, not `os`); `<unresolved>` when `STACK_GLOBAL`
    /// takes it from a value that is not a constant string, `<extension>` for `EXT1/2/4`.
    pub module: String,
    /// Qualified name inside the module (may be dotted); `<unresolved>` as for `module`, the
    /// extension code for `EXT1/2/4`.
    pub name: String,
    /// True when the pickle calls it or applies state to it (`REDUCE`, `OBJ`, `NEWOBJ`,
    /// `NEWOBJ_EX`, `INST`, `BUILD`), anywhere in the input.
    pub called: bool,
    /// What [`judge`] says of it.
    pub verdict: ImportVerdict,
}

/// The verdict on one imported callable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportVerdict {
    /// On the allowlist of what honest checkpoints import.
    Safe,
    /// On neither list: worth a warning, not proof of an attack.
    Unknown,
    /// On the blocklist; carries the family: "code execution", "process execution",
    /// "indirection", "nested loading", "file system" or "network".
    Dangerous(&'static str),
}

/// What [`analyze`] found in a stream of pickles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PickleReport {
    /// Every non-empty string and bytes constant, in stream order.
    pub strings: Vec<PickleString>,
    /// Every distinct (module, name) imported, in order of first appearance.
    pub imports: Vec<PickleImport>,
    /// Pickles walked, the last one included even when it is truncated or broken.
    pub pickles: usize,
    /// Anomalies and the reason the walk stopped early, each with its byte offset.
    pub errors: Vec<String>,
    /// True when the walk did not reach the end of the last pickle: the input ended inside it or
    /// a limit stopped the walk.
    pub truncated: bool,
}

/// Whether `data` plausibly starts a pickle.
///
/// The first opcodes are decoded and emulated strictly, as CPython would (and with
/// `GLOBAL`/`INST` names that must be dotted identifiers). Protocol 2+ streams start with `PROTO`
/// (`\x80` and a version 2..=5) and are claimed unless their first 16 opcodes are invalid; the
/// data may be a prefix. Protocols 0 and 1 have no magic, so more is asked: a `STOP` that ends the
/// data or is followed by another pickle, 16 valid opcodes, or the end of the data after at least
/// three (a prefix like `(dp0\n`), and in the last two cases at least one opcode that builds or
/// names something, since a text whose lines all start with `V` is a valid run of `UNICODE`
/// constants. Ordinary text and binary fail within a few bytes. A run of valid constants is
/// followed to its end (CPython would load a payload behind it), so the cost is linear at worst.
pub fn looks_like_pickle(data: &[u8]) -> bool {
    match data {
        [0x80, version, ..] if (2..=PROTOCOL_MAX).contains(version) => sniff(data, true),
        [] => false,
        _ => sniff(data, false),
    }
}

/// Walks every pickle in `data`, protocols 0–5, and reports their string constants and imports.
///
/// Several pickles can follow each other: after a `STOP` the walk goes on while the remaining
/// bytes [look like a pickle](looks_like_pickle), so trailing raw data (legacy PyTorch storages)
/// is left alone. Each pickle gets a fresh stack and memo, as each `pickle.load` call does.
pub fn analyze(data: &[u8], limits: &PickleLimits) -> PickleReport {
    let mut walker = Walker::new(data, *limits, false);
    while walker.pos < data.len() {
        walker.report.pickles += 1;
        let start = walker.pos;
        match walker.walk_pickle() {
            Ok(()) => {
                if !looks_like_pickle(&data[walker.pos..]) {
                    break;
                }
            }
            Err(Halt::Eof) => {
                let n = walker.report.pickles;
                walker.report.errors.push(format!(
                    "offset {}: the stream ends inside pickle {n} (started at offset {start})",
                    data.len()
                ));
                walker.report.truncated = true;
                break;
            }
            Err(Halt::Broken(message)) => {
                walker.report.errors.push(message);
                break;
            }
            Err(Halt::Limit(message)) => {
                walker.report.errors.push(message);
                walker.report.truncated = true;
                break;
            }
        }
    }
    walker.finish()
}

/// The verdict for one imported callable (module, qualified name).
///
/// In order:
/// 1. **Blocklist** by family, matched on dotted path prefixes of `module.name` (so `os` blocks
///    `os.path.join` and `torch.jit` blocks `torch.jit.load`), with module aliases folded
///    (`__builtin__` → `builtins`, `_pickle`/`cPickle` → `pickle`, `_io` → `io`, ...). A dotted
///    name is also matched from each of its segments, because attribute lookup can walk into
///    another module (`torch` + `serialization.pickle.loads`). Asyncio paths naming a subprocess
///    count as process execution.
/// 2. A dunder segment in the name (`OrderedDict.__init__.__globals__`) is indirection, except
///    `copyreg.__newobj__`/`__newobj_ex__`.
/// 3. **Allowlist** (single-segment names only): torch tensor/storage rebuild functions, storage
///    types, dtypes, layouts and memory formats, `torch.device`/`Size`/`Parameter`,
///    `torch.nn.modules.*` classes, `collections.OrderedDict` and friends, numpy array and scalar
///    reconstruction, dtypes, `_codecs.encode`, plain builtins types, `datetime`/`decimal` values
///    and `argparse.Namespace`.
/// 4. **Estimators**, a separate list: explicit joblib/scipy/sklearn helpers, and any
///    capitalised class under `sklearn.` (except `sklearn.externals` and test utilities). Building
///    such an object runs `__new__` and `__setstate__` only; callables stored in its parameters
///    are imports of their own and judged separately.
/// 5. Everything else, `copyreg._reconstructor` included, is [`ImportVerdict::Unknown`].
pub fn judge(module: &str, name: &str) -> ImportVerdict {
    let module = canonical_module(module);
    let path = format!("{module}.{name}");
    let mut family = blocked(&path);
    if name.contains('.') {
        let starts = std::iter::once(0).chain(name.match_indices('.').map(|(i, _)| i + 1));
        for start in starts {
            let suffix = &name[start..];
            let (head, tail) = suffix.split_once('.').unwrap_or((suffix, ""));
            let folded = canonical_module(head);
            let candidate = if tail.is_empty() {
                folded.into_owned()
            } else {
                format!("{folded}.{tail}")
            };
            family = family.or_else(|| blocked(&candidate));
        }
    }
    if let Some(family) = family {
        return ImportVerdict::Dangerous(family);
    }
    if name.split('.').any(is_dunder) && !DUNDER_EXEMPT.contains(&path.as_str()) {
        return ImportVerdict::Dangerous(INDIRECTION);
    }
    if !name.contains('.')
        && (is_allowlisted(&module, name, &path) || is_estimator(&module, name, &path))
    {
        return ImportVerdict::Safe;
    }
    ImportVerdict::Unknown
}

// ---------------------------------------------------------------------------------------------
// Verdict lists.

const CODE: &str = "code execution";
const PROCESS: &str = "process execution";
const INDIRECTION: &str = "indirection";
const NESTED: &str = "nested loading";
const FILES: &str = "file system";
const NETWORK: &str = "network";

/// Dotted path prefixes and their family; the longest matching prefix decides.
const BLOCKED: &[(&str, &str)] = &[
    // Code execution.
    ("builtins.eval", CODE),
    ("builtins.exec", CODE),
    ("builtins.execfile", CODE),
    ("builtins.compile", CODE),
    ("builtins.__import__", CODE),
    ("builtins.getattr", CODE),
    ("builtins.breakpoint", CODE),
    ("builtins.input", CODE),
    ("builtins.raw_input", CODE),
    ("builtins.reload", CODE),
    ("builtins.help", CODE),
    ("types.CodeType", CODE),
    ("types.FunctionType", CODE),
    ("types.LambdaType", CODE),
    ("types.MethodType", CODE),
    ("marshal", CODE),
    ("runpy", CODE),
    ("code", CODE),
    ("codeop", CODE),
    ("imp", CODE),
    ("cProfile", CODE),
    ("profile", CODE),
    ("timeit", CODE),
    ("trace", CODE),
    ("pdb", CODE),
    ("bdb", CODE),
    ("doctest", CODE),
    ("idlelib", CODE),
    ("numpy.f2py", CODE),
    ("numpy.testing", CODE),
    ("numpy.distutils", CODE),
    ("torch._dynamo", CODE),
    ("torch._inductor", CODE),
    ("torch.jit", CODE),
    ("torch.compile", CODE),
    ("torch.fx", CODE),
    ("torch.hub", CODE),
    ("torch.utils.cpp_extension", CODE),
    // Processes and the operating system.
    ("os", PROCESS),
    ("posix", PROCESS),
    ("nt", PROCESS),
    ("subprocess", PROCESS),
    ("_posixsubprocess", PROCESS),
    ("_winapi", PROCESS),
    ("commands", PROCESS),
    ("popen2", PROCESS),
    ("pty", PROCESS),
    ("multiprocessing", PROCESS),
    ("_multiprocessing", PROCESS),
    ("webbrowser", PROCESS),
    ("pip", PROCESS),
    ("ensurepip", PROCESS),
    ("venv", PROCESS),
    ("ctypes", PROCESS),
    ("_ctypes", PROCESS),
    ("platform.popen", PROCESS),
    ("pydoc.pipepager", PROCESS),
    ("pydoc.tempfilepager", PROCESS),
    ("pydoc.pager", PROCESS),
    ("pydoc.getpager", PROCESS),
    ("distutils.spawn", PROCESS),
    ("distutils.util", PROCESS),
    ("distutils.core", PROCESS),
    ("distutils.ccompiler", PROCESS),
    ("setuptools.sandbox", PROCESS),
    ("setuptools.command", PROCESS),
    // Indirection: reaching or calling something the pickle does not name.
    ("importlib", INDIRECTION),
    ("pkgutil", INDIRECTION),
    ("pydoc", INDIRECTION),
    ("operator.attrgetter", INDIRECTION),
    ("operator.methodcaller", INDIRECTION),
    ("operator.call", INDIRECTION),
    ("functools.partial", INDIRECTION),
    ("functools.partialmethod", INDIRECTION),
    ("functools.reduce", INDIRECTION),
    ("sys", INDIRECTION),
    ("gc", INDIRECTION),
    ("builtins.setattr", INDIRECTION),
    ("builtins.delattr", INDIRECTION),
    ("builtins.globals", INDIRECTION),
    ("builtins.locals", INDIRECTION),
    ("builtins.vars", INDIRECTION),
    ("builtins.apply", INDIRECTION),
    ("builtins.map", INDIRECTION),
    ("builtins.filter", INDIRECTION),
    ("_thread.start_new_thread", INDIRECTION),
    ("_thread.start_new", INDIRECTION),
    ("weakref.finalize", INDIRECTION),
    ("atexit", INDIRECTION),
    ("logging.config", INDIRECTION),
    // Nested loading: a second deserializer with its own payload.
    ("pickle", NESTED),
    ("dill", NESTED),
    ("cloudpickle", NESTED),
    ("jsonpickle", NESTED),
    ("shelve", NESTED),
    ("joblib.load", NESTED),
    ("joblib.numpy_pickle.load", NESTED),
    ("sklearn.externals.joblib.load", NESTED),
    ("sklearn.externals.joblib.numpy_pickle.load", NESTED),
    ("torch.load", NESTED),
    ("torch.serialization.load", NESTED),
    ("torch.serialization._load", NESTED),
    ("torch.serialization._legacy_load", NESTED),
    ("torch.storage._load_from_bytes", NESTED),
    ("torch.package", NESTED),
    ("numpy.load", NESTED),
    ("numpy.lib.npyio.load", NESTED),
    ("numpy.lib._npyio_impl.load", NESTED),
    ("numpy.lib.format.read_array", NESTED),
    ("pandas.read_pickle", NESTED),
    ("pandas.io.pickle", NESTED),
    ("yaml.load", NESTED),
    ("yaml.load_all", NESTED),
    ("yaml.unsafe_load", NESTED),
    ("yaml.unsafe_load_all", NESTED),
    // Files.
    ("builtins.open", FILES),
    ("builtins.file", FILES),
    ("io.open", FILES),
    ("io.open_code", FILES),
    ("io.FileIO", FILES),
    ("codecs.open", FILES),
    ("shutil", FILES),
    ("tempfile", FILES),
    ("fileinput", FILES),
    ("linecache", FILES),
    ("mmap", FILES),
    ("sqlite3", FILES),
    ("logging.FileHandler", FILES),
    ("logging.handlers", FILES),
    // Network.
    ("logging.handlers.SocketHandler", NETWORK),
    ("logging.handlers.DatagramHandler", NETWORK),
    ("logging.handlers.SysLogHandler", NETWORK),
    ("logging.handlers.SMTPHandler", NETWORK),
    ("logging.handlers.HTTPHandler", NETWORK),
    ("socket", NETWORK),
    ("ssl", NETWORK),
    ("socketserver", NETWORK),
    ("SocketServer", NETWORK),
    ("http", NETWORK),
    ("httplib", NETWORK),
    ("urllib.request", NETWORK),
    ("urllib.urlopen", NETWORK),
    ("urllib.urlretrieve", NETWORK),
    ("urllib.URLopener", NETWORK),
    ("urllib2", NETWORK),
    ("urllib3", NETWORK),
    ("requests", NETWORK),
    ("aiohttp", NETWORK),
    ("httpx", NETWORK),
    ("smtplib", NETWORK),
    ("ftplib", NETWORK),
    ("telnetlib", NETWORK),
    ("poplib", NETWORK),
    ("imaplib", NETWORK),
    ("nntplib", NETWORK),
    ("xmlrpc", NETWORK),
    ("xmlrpclib", NETWORK),
    ("torch.distributed.rpc", NETWORK),
];

/// Dunder names that honest pickles of protocol 0/1 may import.
const DUNDER_EXEMPT: &[&str] = &["copyreg.__newobj__", "copyreg.__newobj_ex__"];

/// Exact `module.name` paths that honest checkpoints import.
const ALLOWED: &[&str] = &[
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.Counter",
    "collections.deque",
    "torch._tensor._rebuild_from_type",
    "torch._tensor._rebuild_from_type_v2",
    "torch.serialization._get_layout",
    "torch.device",
    "torch.Size",
    "torch.dtype",
    "torch.layout",
    "torch.memory_format",
    "torch.Tensor",
    "torch.strided",
    "torch.sparse_coo",
    "torch.sparse_csr",
    "torch.sparse_csc",
    "torch.sparse_bsr",
    "torch.sparse_bsc",
    "torch._mkldnn",
    "torch.contiguous_format",
    "torch.channels_last",
    "torch.channels_last_3d",
    "torch.preserve_format",
    "torch.nn.parameter.Parameter",
    "torch.nn.parameter.Buffer",
    "torch.nn.parameter.UninitializedParameter",
    "torch.nn.parameter.UninitializedBuffer",
    "numpy.core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.ma.core._mareconstruct",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "_codecs.encode",
    "codecs.encode",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "builtins.complex",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.int",
    "builtins.long",
    "builtins.float",
    "builtins.str",
    "builtins.unicode",
    "builtins.bool",
    "builtins.object",
    "builtins.range",
    "builtins.Ellipsis",
    "builtins.NotImplemented",
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "decimal.Decimal",
    "fractions.Fraction",
    "uuid.UUID",
    "argparse.Namespace",
    "types.SimpleNamespace",
];

/// Torch dtype objects, pickled as `torch.<name>`.
const TORCH_DTYPES: &[&str] = &[
    "float",
    "double",
    "half",
    "bfloat16",
    "float16",
    "float32",
    "float64",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "chalf",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "short",
    "int",
    "long",
    "bool",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
];

/// Explicit estimator helpers (joblib wrappers, sklearn and scipy reconstructors).
const ESTIMATORS: &[&str] = &[
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "joblib.numpy_pickle.NDArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    "sklearn.externals.joblib.numpy_pickle.NDArrayWrapper",
    "sklearn.neighbors._kd_tree.newObj",
    "sklearn.neighbors._ball_tree.newObj",
    "scipy.sparse._csr.csr_matrix",
    "scipy.sparse.csr.csr_matrix",
    "scipy.sparse._csc.csc_matrix",
    "scipy.sparse.csc.csc_matrix",
    "scipy.sparse._coo.coo_matrix",
    "scipy.sparse.coo.coo_matrix",
];

/// Folds module aliases (Python 2 names, C accelerator modules) onto one spelling.
fn canonical_module(module: &str) -> std::borrow::Cow<'_, str> {
    const ALIASES: &[(&str, &str)] = &[
        ("__builtin__", "builtins"),
        ("_pickle", "pickle"),
        ("cPickle", "pickle"),
        ("copy_reg", "copyreg"),
        ("_operator", "operator"),
        ("_functools", "functools"),
        ("_io", "io"),
        ("_socket", "socket"),
        ("_ssl", "ssl"),
        ("thread", "_thread"),
        ("numpy._core", "numpy.core"),
    ];
    for &(alias, canonical) in ALIASES {
        if let Some(rest) = module.strip_prefix(alias) {
            if rest.is_empty() || rest.starts_with('.') {
                return format!("{canonical}{rest}").into();
            }
        }
    }
    module.into()
}

/// The family of the longest blocklist prefix of `path`, if any.
fn blocked(path: &str) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for &(rule, family) in BLOCKED {
        let matches = path
            .strip_prefix(rule)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
        if matches && best.is_none_or(|(len, _)| rule.len() > len) {
            best = Some((rule.len(), family));
        }
    }
    let asyncio = path == "asyncio" || path.starts_with("asyncio.");
    if best.is_none() && asyncio && path.to_ascii_lowercase().contains("subprocess") {
        return Some(PROCESS);
    }
    best.map(|(_, family)| family)
}

fn is_dunder(segment: &str) -> bool {
    segment.len() > 4 && segment.starts_with("__") && segment.ends_with("__")
}

fn is_allowlisted(module: &str, name: &str, path: &str) -> bool {
    if ALLOWED.contains(&path) {
        return true;
    }
    match module {
        "torch._utils" => name.starts_with("_rebuild_"),
        "torch" => TORCH_DTYPES.contains(&name) || is_storage_type(name),
        "torch.cuda" | "torch.storage" => is_storage_type(name),
        "numpy.dtypes" => name.ends_with("DType") && is_identifier(name),
        _ => module.starts_with("torch.nn.modules.") && is_class_name(name),
    }
}

fn is_storage_type(name: &str) -> bool {
    name.ends_with("Storage") && is_identifier(name)
}

fn is_estimator(module: &str, name: &str, path: &str) -> bool {
    if ESTIMATORS.contains(&path) {
        return true;
    }
    let sklearn = module == "sklearn" || module.starts_with("sklearn.");
    let excluded = [
        "sklearn.externals",
        "sklearn.utils._testing",
        "sklearn.utils.estimator_checks",
    ]
    .iter()
    .any(|prefix| module == *prefix || module.starts_with(&format!("{prefix}.")));
    sklearn && !excluded && is_class_name(name)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_class_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && is_identifier(s)
}

// ---------------------------------------------------------------------------------------------
// Opcode walk.

const PROTOCOL_MAX: u8 = 5;
/// Longest string kept on the emulated stack as a possible module or name for `STACK_GLOBAL`.
const NAME_CAP: usize = 1024;
/// Distinct imports recorded; a stream naming more is hostile.
const MAX_IMPORTS: usize = 100_000;
/// Error messages recorded; the rest are counted in one final message.
const MAX_ERRORS: usize = 100;
/// Opcodes [`looks_like_pickle`] decodes before claiming data (that builds something).
const SNIFF_OPS: usize = 16;
/// Valid opcodes before the end of the data that let a prefix be claimed.
const SNIFF_MIN_OPS: usize = 3;
const UNRESOLVED: &str = "<unresolved>";

/// A value on the emulated stack or in the memo.
#[derive(Debug, Clone)]
enum Value {
    /// A short string or bytes constant, a possible `STACK_GLOBAL` operand.
    Str(Rc<str>),
    /// An imported callable: its index in the report's imports.
    Global(usize),
    /// Anything else.
    Opaque,
}

/// Why the walk of one pickle stopped before its `STOP`.
enum Halt {
    /// The input ended inside the pickle.
    Eof,
    /// The bytes cannot be decoded further (unknown opcode, bad argument).
    Broken(String),
    /// A limit was reached.
    Limit(String),
}

type Step<T> = Result<T, Halt>;

/// The opcode's name in `pickletools`, or `None` for a byte that is not an opcode.
fn op_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

/// Strict walk of the first opcodes for [`looks_like_pickle`]; `magic` when the data starts
/// with a protocol 2+ `PROTO`, which is evidence enough unless the opcodes are invalid.
///
/// Without magic the opcodes must also build something: a text whose every line starts with
/// `P` or `V` ("Package: ...", "Version ...") is a valid run of `PERSID`/`UNICODE` constants.
fn sniff(data: &[u8], magic: bool) -> bool {
    let limits = PickleLimits {
        max_ops: if magic { SNIFF_OPS } else { usize::MAX },
        max_string: NAME_CAP,
        ..PickleLimits::default()
    };
    let mut walker = Walker::new(data, limits, true);
    let mut complete = 0;
    let mut structure = false;
    loop {
        let op = data.get(walker.pos).copied();
        let step = walker.step();
        if magic {
            return match step {
                Ok(false) => continue,
                Err(Halt::Broken(_)) => false,
                Ok(true) | Err(Halt::Eof | Halt::Limit(_)) => true,
            };
        }
        match step {
            // A STOP claims the data only when nothing follows or another pickle does: "G",
            // eight bytes, "2." is also how "Git 1.7.12.2 Release Notes" starts.
            Ok(true) if walker.pos == data.len() => return true,
            Ok(true) => {
                walker.reset();
                structure = true;
            }
            Ok(false) => structure |= op.is_some_and(is_structural),
            // Only the stack limit: a million valid constants are no text.
            Err(Halt::Limit(_)) => return true,
            Err(Halt::Eof) => return structure && complete >= SNIFF_MIN_OPS,
            Err(Halt::Broken(_)) => return false,
        }
        complete += 1;
        // Constants alone do not end the look: CPython loads a payload behind any number of
        // them, so a prefix of constants must not hide it.
        if structure && complete >= SNIFF_OPS {
            return true;
        }
    }
}

/// Opcodes that build, name or reference something, as opposed to pushing a constant. `PROTO`,
/// `FRAME` and `EXT*` are left out: honest protocol 0/1 streams never hold them.
fn is_structural(op: u8) -> bool {
    !matches!(
        op,
        b'0' | b'2'
            | b'B'
            | b'C'
            | b'F'
            | b'G'
            | b'I'
            | b'J'
            | b'K'
            | b'L'
            | b'M'
            | b'N'
            | b'P'
            | b'Q'
            | b'S'
            | b'T'
            | b'U'
            | b'V'
            | b'X'
            | 0x80
            | 0x82..=0x84
            | 0x88..=0x8e
            | 0x95..=0x98
    )
}

/// The emulator: decodes opcodes one at a time and keeps a stack, marks and memo.
struct Walker<'d> {
    data: &'d [u8],
    pos: usize,
    limits: PickleLimits,
    /// Sniffing: every anomaly is fatal and nothing is collected.
    strict: bool,
    stack: Vec<Value>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    /// The memo reached `max_memo`: new keys are dropped.
    memo_full: bool,
    /// A `MEMOIZE` ran on a full memo, whose key we cannot know: no entry is trusted any more.
    memo_unreliable: bool,
    ops: usize,
    report: PickleReport,
    import_ids: HashMap<(String, String), usize>,
    imports_capped: bool,
    /// The one string value that sniffing pushes.
    empty: Rc<str>,
    errors_omitted: usize,
}

impl<'d> Walker<'d> {
    fn new(data: &'d [u8], limits: PickleLimits, strict: bool) -> Self {
        Walker {
            data,
            pos: 0,
            limits,
            strict,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            memo_full: false,
            memo_unreliable: false,
            ops: 0,
            report: PickleReport::default(),
            import_ids: HashMap::new(),
            imports_capped: false,
            empty: Rc::from(""),
            errors_omitted: 0,
        }
    }

    /// Walks one pickle from `pos` through its `STOP`, with a fresh stack and memo.
    fn walk_pickle(&mut self) -> Step<()> {
        self.reset();
        while !self.step()? {}
        Ok(())
    }

    /// A fresh stack and memo for the next pickle.
    fn reset(&mut self) {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        self.memo_full = false;
        self.memo_unreliable = false;
    }

    /// Records an error message, within [`MAX_ERRORS`]; the message is only built when kept.
    fn error(&mut self, message: impl FnOnce() -> String) {
        if self.report.errors.len() < MAX_ERRORS {
            self.report.errors.push(message());
        } else {
            self.errors_omitted += 1;
        }
    }

    /// The report, with a note of the errors that were not kept.
    fn finish(mut self) -> PickleReport {
        if self.errors_omitted > 0 {
            let note = format!("{} further errors omitted", self.errors_omitted);
            self.report.errors.push(note);
        }
        self.report
    }

    /// Something CPython would reject: fatal when sniffing, recorded otherwise.
    fn anomaly(&mut self, at: usize, op: &str, message: &str) -> Step<()> {
        if self.strict {
            return Err(Halt::Broken(String::new()));
        }
        self.error(|| format!("offset {at}: {op}: {message}"));
        Ok(())
    }

    fn broken(&self, at: usize, op: &str, message: &str) -> Halt {
        Halt::Broken(format!("offset {at}: {op}: {message}"))
    }

    // --- Reading arguments.

    fn fixed(&mut self, n: usize) -> Step<&'d [u8]> {
        let rest = &self.data[self.pos..];
        if rest.len() < n {
            self.pos = self.data.len();
            return Err(Halt::Eof);
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn uint(&mut self, n: usize) -> Step<u64> {
        let bytes = self.fixed(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A protocol-0 argument: the bytes up to the next newline, which is consumed.
    fn line(&mut self) -> Step<&'d [u8]> {
        let rest = &self.data[self.pos..];
        match memchr::memchr(b'\n', rest) {
            Some(end) => {
                self.pos += end + 1;
                Ok(&rest[..end])
            }
            None => {
                self.pos = self.data.len();
                Err(Halt::Eof)
            }
        }
    }

    /// A decimal protocol-0 argument (`GET`, `PUT`).
    fn decimal_line(&mut self, at: usize, op: &'static str) -> Step<Option<u64>> {
        let line = self.line()?;
        let text = std::str::from_utf8(line).unwrap_or("").trim();
        match text.parse::<u64>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => {
                self.anomaly(at, op, "argument is not a decimal index")?;
                Ok(None)
            }
        }
    }

    // --- Stack and memo.

    fn fence(&self) -> usize {
        self.marks
            .last()
            .copied()
            .unwrap_or(0)
            .min(self.stack.len())
    }

    fn push(&mut self, value: Value) -> Step<()> {
        if self.stack.len() + self.marks.len() >= self.limits.max_stack {
            return Err(Halt::Limit(format!(
                "offset {}: stack limit of {} items reached",
                self.pos, self.limits.max_stack
            )));
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self, at: usize, op: &str) -> Step<Value> {
        if self.stack.len() > self.fence() {
            Ok(self.stack.pop().unwrap_or(Value::Opaque))
        } else {
            self.anomaly(at, op, "stack underflow")?;
            Ok(Value::Opaque)
        }
    }

    /// The value on top of the stack, which stays there.
    fn top(&mut self, at: usize, op: &str) -> Step<Value> {
        if self.stack.len() > self.fence() {
            Ok(self.stack.last().cloned().unwrap_or(Value::Opaque))
        } else {
            self.anomaly(at, op, "stack underflow")?;
            Ok(Value::Opaque)
        }
    }

    /// Closes the innermost mark; the items above it are `stack[start..]`, left for the caller
    /// to read and truncate.
    fn pop_mark(&mut self, at: usize, op: &str) -> Step<usize> {
        match self.marks.pop() {
            Some(start) => Ok(start.min(self.stack.len())),
            None => {
                self.anomaly(at, op, "no MARK to close")?;
                Ok(self.stack.len())
            }
        }
    }

    /// Closes the innermost mark and discards the items above it.
    fn drop_mark(&mut self, at: usize, op: &str) -> Step<usize> {
        let start = self.pop_mark(at, op)?;
        let count = self.stack.len() - start;
        self.stack.truncate(start);
        Ok(count)
    }

    fn memo_put(&mut self, key: u64, value: Value) {
        if let Some(slot) = self.memo.get_mut(&key) {
            *slot = value;
        } else if self.memo.len() < self.limits.max_memo {
            self.memo.insert(key, value);
        } else if !self.memo_full {
            self.memo_full = true;
            let (pos, max) = (self.pos, self.limits.max_memo);
            self.error(|| {
                format!("offset {pos}: memo limit of {max} entries reached; later entries are not resolved")
            });
        }
    }

    fn memo_get(&mut self, at: usize, op: &str, key: Option<u64>) -> Step<Value> {
        if self.memo_unreliable {
            return Ok(Value::Opaque);
        }
        match key.and_then(|key| self.memo.get(&key)) {
            Some(value) => Ok(value.clone()),
            None if self.memo_full => Ok(Value::Opaque),
            None => {
                self.anomaly(at, op, "no memo entry at this index")?;
                Ok(Value::Opaque)
            }
        }
    }

    // --- Collecting.

    /// Records a string constant and returns its stack value.
    fn string(&mut self, at: usize, bytes: &[u8]) -> Value {
        if !self.strict && !bytes.is_empty() {
            let kept = &bytes[..bytes.len().min(self.limits.max_string)];
            self.report.strings.push(PickleString {
                offset: at,
                value: kept.to_vec(),
            });
        }
        if self.strict {
            // Sniffing only needs to know that it is a string.
            Value::Str(Rc::clone(&self.empty))
        } else if bytes.len() <= NAME_CAP {
            Value::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref()))
        } else {
            Value::Opaque
        }
    }

    /// A length-prefixed string constant; a short read still records what is there.
    fn counted_string(&mut self, at: usize, len: u64) -> Step<()> {
        let rest = &self.data[self.pos..];
        match usize::try_from(len) {
            Ok(len) if len <= rest.len() => {
                self.pos += len;
                let value = self.string(at, &rest[..len]);
                self.push(value)
            }
            _ => {
                self.string(at, rest);
                self.pos = self.data.len();
                Err(Halt::Eof)
            }
        }
    }

    /// Records an import and returns its stack value.
    fn import(&mut self, at: usize, module: &str, name: &str, called: bool) -> Value {
        self.import_named(at, module, name, called, true)
    }

    /// Records an import whose module or name may be unknown (`resolved` false): a name
    /// computed at load time is indirection whatever the part that is known.
    fn import_named(
        &mut self,
        at: usize,
        module: &str,
        name: &str,
        called: bool,
        resolved: bool,
    ) -> Value {
        if self.strict {
            return Value::Opaque;
        }
        let module = truncate_chars(module, NAME_CAP);
        let name = truncate_chars(name, NAME_CAP);
        let key = (module.to_owned(), name.to_owned());
        if let Some(&index) = self.import_ids.get(&key) {
            self.report.imports[index].called |= called;
            return Value::Global(index);
        }
        if self.report.imports.len() >= MAX_IMPORTS {
            if !self.imports_capped {
                self.imports_capped = true;
                self.error(|| {
                    format!(
                        "offset {at}: more than {MAX_IMPORTS} distinct imports are not recorded"
                    )
                });
            }
            return Value::Opaque;
        }
        let mut verdict = judge(module, name);
        if !resolved && !matches!(verdict, ImportVerdict::Dangerous(_)) {
            verdict = ImportVerdict::Dangerous(INDIRECTION);
        }
        let index = self.report.imports.len();
        self.report.imports.push(PickleImport {
            offset: at,
            module: key.0.clone(),
            name: key.1.clone(),
            called,
            verdict,
        });
        self.import_ids.insert(key, index);
        Value::Global(index)
    }

    /// Marks the callable consumed by a call opcode.
    fn call(&mut self, callable: &Value) {
        if let Value::Global(index) = *callable {
            if let Some(import) = self.report.imports.get_mut(index) {
                import.called = true;
            }
        }
    }

    /// The `module` and `name` lines of `GLOBAL` and `INST`.
    fn name_lines(&mut self, at: usize, op: &'static str) -> Step<(String, String)> {
        let module = self.line()?;
        let name = self.line()?;
        if self.strict && !(is_dotted_identifier(module) && is_dotted_identifier(name)) {
            return Err(self.broken(at, op, "not an identifier"));
        }
        let cap =
            |line: &[u8]| String::from_utf8_lossy(&line[..line.len().min(NAME_CAP)]).into_owned();
        Ok((cap(module), cap(name)))
    }

    // --- One opcode.

    /// Decodes and emulates one opcode; true after `STOP`.
    fn step(&mut self) -> Step<bool> {
        let at = self.pos;
        let Some(&op) = self.data.get(at) else {
            return Err(Halt::Eof);
        };
        if self.ops >= self.limits.max_ops {
            return Err(Halt::Limit(format!(
                "offset {at}: opcode limit of {} reached",
                self.limits.max_ops
            )));
        }
        let Some(name) = op_name(op) else {
            return Err(Halt::Broken(format!(
                "offset {at}: unknown opcode 0x{op:02x}"
            )));
        };
        self.ops += 1;
        self.pos += 1;
        match op {
            b'(' => {
                if self.stack.len() + self.marks.len() >= self.limits.max_stack {
                    return Err(Halt::Limit(format!(
                        "offset {at}: stack limit of {} items reached",
                        self.limits.max_stack
                    )));
                }
                self.marks.push(self.stack.len());
            }
            b'.' => {
                self.pop(at, name)?;
                return Ok(true);
            }
            b'0' => {
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop(at, name)?;
                }
            }
            b'1' => {
                self.drop_mark(at, name)?;
            }
            b'2' => {
                let value = self.top(at, name)?;
                self.push(value)?;
            }
            b'F' => {
                let line = self.line()?;
                if !is_float_text(line) {
                    self.anomaly(at, name, "not a float")?;
                }
                self.push(Value::Opaque)?;
            }
            b'I' | b'L' => {
                let line = self.line()?;
                let digits = if op == b'L' {
                    line.strip_suffix(b"L").unwrap_or(line)
                } else {
                    line
                };
                if !is_int_text(digits) {
                    self.anomaly(at, name, "not an integer")?;
                }
                self.push(Value::Opaque)?;
            }
            b'J' | b'K' | b'M' | b'G' => {
                let width = match op {
                    b'J' => 4,
                    b'K' => 1,
                    b'M' => 2,
                    _ => 8,
                };
                self.fixed(width)?;
                self.push(Value::Opaque)?;
            }
            0x8a | 0x8b => {
                let len = if op == 0x8a {
                    self.uint(1)?
                } else {
                    self.uint(4)?
                };
                if op == 0x8b && len > i32::MAX as u64 {
                    return Err(self.broken(at, name, "negative byte count"));
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                self.fixed(len)?;
                self.push(Value::Opaque)?;
            }
            b'N' | 0x88 | 0x89 | b'}' | b']' | b')' | 0x8f | 0x97 => self.push(Value::Opaque)?,
            b'P' => {
                let line = self.line()?;
                if !line.is_ascii() {
                    self.anomaly(at, name, "persistent id is not ASCII")?;
                }
                self.string(at, line);
                self.push(Value::Opaque)?;
            }
            b'Q' => {
                self.pop(at, name)?;
                self.push(Value::Opaque)?;
            }
            b'R' => {
                self.pop(at, name)?;
                let callable = self.pop(at, name)?;
                self.call(&callable);
                self.push(Value::Opaque)?;
            }
            b'S' => {
                let line = self.line()?;
                let body = match line {
                    [q, body @ .., last] if (*q == b'\'' || *q == b'"') && q == last => body,
                    _ => {
                        self.anomaly(at, name, "argument is not quoted")?;
                        line
                    }
                };
                let (value, ok) = unescape(body, self.limits.max_string);
                if !ok {
                    self.anomaly(at, name, "bad escape")?;
                }
                let value = self.string(at, &value);
                self.push(value)?;
            }
            b'V' => {
                let line = self.line()?;
                let value = raw_unicode_unescape(line, self.limits.max_string);
                let value = self.string(at, value.as_bytes());
                self.push(value)?;
            }
            b'T' => {
                let len = self.uint(4)?;
                if len > i32::MAX as u64 {
                    return Err(self.broken(at, name, "negative byte count"));
                }
                self.counted_string(at, len)?;
            }
            b'U' | b'C' | 0x8c => {
                let len = self.uint(1)?;
                self.counted_string(at, len)?;
            }
            b'X' | b'B' => {
                let len = self.uint(4)?;
                self.counted_string(at, len)?;
            }
            0x8d | 0x8e | 0x96 => {
                let len = self.uint(8)?;
                self.counted_string(at, len)?;
            }
            b'a' => {
                self.pop(at, name)?;
                self.top(at, name)?;
            }
            b'e' | 0x90 => {
                self.drop_mark(at, name)?;
                self.top(at, name)?;
            }
            b'b' => {
                self.pop(at, name)?;
                let target = self.top(at, name)?;
                self.call(&target);
            }
            b'c' => {
                let (module, global) = self.name_lines(at, name)?;
                let value = self.import(at, &module, &global, false);
                self.push(value)?;
            }
            b'i' => {
                let (module, global) = self.name_lines(at, name)?;
                self.import(at, &module, &global, true);
                self.drop_mark(at, name)?;
                self.push(Value::Opaque)?;
            }
            0x93 => {
                let global = self.pop(at, name)?;
                let module = self.pop(at, name)?;
                let text = |value: &Value| match value {
                    Value::Str(s) => Some(s.to_string()),
                    _ => None,
                };
                let (module, global) = (text(&module), text(&global));
                let resolved = module.is_some() && global.is_some();
                if self.strict && !resolved {
                    return Err(self.broken(at, name, "operands are not strings"));
                }
                let module = module.as_deref().unwrap_or(UNRESOLVED);
                let global = global.as_deref().unwrap_or(UNRESOLVED);
                let value = self.import_named(at, module, global, false, resolved);
                self.push(value)?;
            }
            0x82..=0x84 => {
                let code = match op {
                    0x82 => self.uint(1)?,
                    0x83 => self.uint(2)?,
                    _ => self.uint(4)?,
                };
                if code == 0 || code > i32::MAX as u64 {
                    self.anomaly(at, name, "extension code is not positive")?;
                }
                let value = self.import(at, "<extension>", &code.to_string(), false);
                self.push(value)?;
            }
            b'd' => {
                if self.drop_mark(at, name)? % 2 != 0 {
                    self.anomaly(at, name, "odd number of items")?;
                }
                self.push(Value::Opaque)?;
            }
            b'l' | b't' | 0x91 => {
                self.drop_mark(at, name)?;
                self.push(Value::Opaque)?;
            }
            0x85..=0x87 => {
                for _ in 0..(op - 0x84) {
                    self.pop(at, name)?;
                }
                self.push(Value::Opaque)?;
            }
            b's' => {
                self.pop(at, name)?;
                self.pop(at, name)?;
                self.top(at, name)?;
            }
            b'u' => {
                if self.drop_mark(at, name)? % 2 != 0 {
                    self.anomaly(at, name, "odd number of items")?;
                }
                self.top(at, name)?;
            }
            b'o' => {
                let start = self.pop_mark(at, name)?;
                match self.stack.get(start).cloned() {
                    Some(class) => self.call(&class),
                    None => self.anomaly(at, name, "no class to instantiate")?,
                }
                self.stack.truncate(start);
                self.push(Value::Opaque)?;
            }
            0x81 | 0x92 => {
                if op == 0x92 {
                    self.pop(at, name)?;
                }
                self.pop(at, name)?;
                let class = self.pop(at, name)?;
                self.call(&class);
                self.push(Value::Opaque)?;
            }
            b'g' => {
                let key = self.decimal_line(at, name)?;
                let value = self.memo_get(at, name, key)?;
                self.push(value)?;
            }
            b'h' | b'j' => {
                let key = self.uint(if op == b'h' { 1 } else { 4 })?;
                let value = self.memo_get(at, name, Some(key))?;
                self.push(value)?;
            }
            b'p' | b'q' | b'r' => {
                let key = match op {
                    b'p' => self.decimal_line(at, name)?,
                    b'q' => Some(self.uint(1)?),
                    _ => Some(self.uint(4)?),
                };
                let value = self.top(at, name)?;
                if let Some(key) = key {
                    self.memo_put(key, value);
                }
            }
            0x94 => {
                let value = self.top(at, name)?;
                if self.memo_full {
                    self.memo_unreliable = true;
                } else {
                    self.memo_put(self.memo.len() as u64, value);
                }
            }
            0x80 => {
                let version = self.uint(1)?;
                if version > u64::from(PROTOCOL_MAX) {
                    self.anomaly(at, name, "unsupported protocol")?;
                }
            }
            0x95 => {
                let len = self.uint(8)?;
                // A sniffed prefix may well end inside a frame.
                if !self.strict && len > (self.data.len() - self.pos) as u64 {
                    self.anomaly(at, name, "frame runs past the end of the data")?;
                }
            }
            0x98 => {
                self.top(at, name)?;
            }
            _ => return Err(self.broken(at, name, "opcode not handled")),
        }
        Ok(false)
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_dotted_identifier(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.split('.').all(is_identifier))
}

fn is_int_text(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    let digits = text
        .strip_prefix(b"-")
        .or_else(|| text.strip_prefix(b"+"))
        .unwrap_or(text);
    !digits.is_empty()
        && digits.first().is_some_and(u8::is_ascii_digit)
        && digits
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b"xXoObB_".contains(&b))
}

fn is_float_text(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    let digits = text
        .strip_prefix(b"-")
        .or_else(|| text.strip_prefix(b"+"))
        .unwrap_or(text);
    let lower = digits.to_ascii_lowercase();
    matches!(lower.as_slice(), b"inf" | b"infinity" | b"nan")
        || (digits.iter().any(u8::is_ascii_digit)
            && digits
                .iter()
                .all(|&b| b.is_ascii_digit() || b".eE+-_".contains(&b)))
}

/// Python's `codecs.escape_decode`, as protocol-0 `STRING` needs; stops at `cap` bytes.
/// The flag is false when an escape was invalid (kept as written).
fn unescape(body: &[u8], cap: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(body.len().min(cap));
    let mut ok = true;
    let mut i = 0;
    while i < body.len() && out.len() < cap {
        let b = body[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = body.get(i) else {
            ok = false;
            out.push(b'\\');
            break;
        };
        i += 1;
        match e {
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match body.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' => match body
                .get(i..i + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(value) => {
                    out.push(value);
                    i += 2;
                }
                None => {
                    ok = false;
                    out.extend_from_slice(b"\\x");
                }
            },
            _ => out.extend_from_slice(&[b'\\', e]),
        }
    }
    out.truncate(cap);
    (out, ok)
}

/// Python's `raw-unicode-escape` decoding, as protocol-0 `UNICODE` needs: `\uXXXX` and
/// `\UXXXXXXXX` after an odd run of backslashes, other bytes as Latin-1; stops near `cap` bytes.
fn raw_unicode_unescape(line: &[u8], cap: usize) -> String {
    let mut out = String::with_capacity(line.len().min(cap));
    let mut i = 0;
    while i < line.len() && out.len() < cap {
        let b = line[i];
        if b != b'\\' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let run = line[i..].iter().take_while(|&&c| c == b'\\').count();
        i += run;
        let width = match line.get(i) {
            Some(b'u') if run % 2 == 1 => 4,
            Some(b'U') if run % 2 == 1 => 8,
            _ => 0,
        };
        let code = line
            .get(i + 1..i + 1 + width)
            .filter(|_| width > 0)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match code {
            Some(code) => {
                out.extend(std::iter::repeat_n('\\', run - 1));
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                i += 1 + width;
            }
            None => out.extend(std::iter::repeat_n('\\', run)),
        }
    }
    if out.len() > cap {
        let end = truncate_chars(&out, cap).len();
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors from CPython 3.11 `pickle.dumps` (dumped, never loaded).
    /// `os.system("echo hi")` via `__reduce__`, protocol 0.
    const OS_P0: &[u8] = b"cposix\nsystem\np0\n(Vecho hi\np1\ntp2\nRp3\n.";
    const OS_P2: &[u8] =
        b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.";
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
                value: b"echo hi".to_vec()
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
        let data = b"(lp0\nS'it\\'s'\np1\naS\"a\\nb\\x41\\101\\\\\"\np2\naV\\u00e9t\\u00e9 \\\\u0041\np3\na.";
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

    /// A small xorshift generator: fixed seed, reproducible failures.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

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
}
