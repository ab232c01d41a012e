//! A fake forge for tests: a small threaded HTTP/1.1 server on `127.0.0.1:0` (std only).
//!
//! ```ignore
//! let forge = FakeForge::start();
//! let base = forge.url(); // "http://127.0.0.1:PORT"
//! forge.json("/orgs/acme/repos?per_page=100&type=all", "[]");
//! forge.page("/x", 429, &[("Retry-After", "1")], ""); // first answer to /x …
//! forge.json("/x", "[]"); // … then this one, for every later request
//! forge.serve_dir("/git", bare_repos_dir); // GET /git/a.git/info/refs → file; dumb-HTTP clones
//! // … run trawl against `base` …
//! let seen = forge.requests(); // every request: method, path with query, headers, body
//! ```
//!
//! Routes are matched on the exact path with its query. Answers registered for one route are
//! served in order and the last one repeats. A path under a `serve_dir` prefix (query ignored)
//! is a file of that directory (`..` refused). Anything else is a 404. Every answer closes its
//! connection. The server stops when the `FakeForge` is dropped.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path with query, as sent (`/orgs/acme/repos?page=2`).
    pub path: String,
    /// Header names as sent; compare with [`Request::header`].
    pub headers: Vec<(String, String)>,
    /// The body, as long as its `Content-Length` says (within the 64 KiB read per request).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, VecDeque<Reply>>,
    dirs: Vec<(String, PathBuf)>,
    requests: Vec<Request>,
}

pub struct FakeForge {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FakeForge {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> FakeForge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            })
        };
        FakeForge {
            addr,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds an answer to `path_and_query`: served after those added before, and repeated if it
    /// is the last.
    pub fn page(
        &self,
        path_and_query: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: impl Into<Vec<u8>>,
    ) {
        let reply = Reply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        };
        self.lock()
            .routes
            .entry(path_and_query.to_string())
            .or_default()
            .push_back(reply);
    }

    /// A 200 answer with a JSON body.
    pub fn json(&self, path_and_query: &str, body: &str) {
        self.page(
            path_and_query,
            200,
            &[("Content-Type", "application/json")],
            body,
        );
    }

    /// A 200 JSON answer with a `Link: <next>; rel="next"` header.
    pub fn json_with_next(&self, path_and_query: &str, body: &str, next: &str) {
        let link = format!("<{next}>; rel=\"next\"");
        self.page(
            path_and_query,
            200,
            &[("Content-Type", "application/json"), ("Link", &link)],
            body,
        );
    }

    /// Serves the files under `dir` at `prefix` (`/git` → `/git/a.git/HEAD` is
    /// `dir/a.git/HEAD`): enough for `git clone` over dumb HTTP of a bare repository in which
    /// `git update-server-info` ran.
    pub fn serve_dir(&self, prefix: &str, dir: &Path) {
        let prefix = format!("/{}", prefix.trim_matches('/'));
        self.lock().dirs.push((prefix, dir.to_path_buf()));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeForge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request, answers it, closes the connection.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream.take(64 * 1024));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return;
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    let _ = (&mut reader).take(length).read_to_end(&mut body);
    let reply = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.requests.push(Request {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
        });
        answer(&mut s, &path)
    };
    let mut out = write_half;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = out.write_all(&reply.body);
    }
    let _ = out.flush();
}

fn answer(s: &mut State, path: &str) -> Reply {
    if let Some(queue) = s.routes.get_mut(path) {
        let reply = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        if let Some(r) = reply {
            return r;
        }
    }
    let bare = path.split('?').next().unwrap_or(path);
    for (prefix, dir) in &s.dirs {
        let Some(rest) = bare.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let rel = Path::new(rest.trim_start_matches('/'));
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        if let Ok(body) = std::fs::read(dir.join(rel)) {
            return Reply {
                status: 200,
                headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                body,
            };
        }
    }
    Reply {
        status: 404,
        headers: Vec::new(),
        body: b"not found".to_vec(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        301 | 302 => "Found",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500..=599 => "Server Error",
        _ => "Status",
    }
}
