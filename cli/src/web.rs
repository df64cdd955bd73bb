//! `stde web`: serves the built browser page (`web/www/`, made by `web/build.sh`) on 127.0.0.1
//! with a tiny static file server on `std::net` — nothing is built at run time.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::args::WebArgs;
use crate::error::CliError;
use crate::text;
use crate::{note, say};

/// The file the build leaves in `pkg/`; its absence means the page was never built.
const BUILT_MARKER: &str = "pkg/stde_web.js";

/// Runs `stde web` until the process is stopped.
///
/// # Errors
/// [`CliError::Flag`] when the page is not built under `--dir` or the port cannot be bound.
pub fn run(args: &WebArgs) -> Result<(), CliError> {
    let root = resolve_dir(&args.dir)?;
    let listener = TcpListener::bind(("127.0.0.1", args.port)).map_err(|e| CliError::Flag {
        flag: "port",
        reason: format!("cannot listen on 127.0.0.1:{}: {e}", args.port),
    })?;
    let port = listener
        .local_addr()
        .map_err(CliError::io("127.0.0.1"))?
        .port();
    say!("serving http://127.0.0.1:{port}/");
    note!("(the page in {}; stop with Ctrl-C)", text::path(&root));
    serve_forever(&listener, &root);
    Ok(())
}

/// Answers every connection on its own thread.
fn serve_forever(listener: &TcpListener, root: &Path) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            // A broken connection only concerns that request.
            let _ = serve(stream, &root);
        });
    }
}

/// `--dir` as given if it exists from the working directory, else relative to the workspace root
/// (so `stde web` works from anywhere inside a checkout); it must hold a built page.
fn resolve_dir(dir: &Path) -> Result<PathBuf, CliError> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = if dir.is_absolute() {
        vec![dir.to_path_buf()]
    } else {
        vec![dir.to_path_buf(), workspace.join(dir)]
    };
    let Some(found) = candidates.iter().find(|d| d.is_dir()) else {
        return Err(CliError::Flag {
            flag: "dir",
            reason: format!(
                "{} is not a directory; build the page with `bash web/build.sh` and serve web/www",
                text::path(dir)
            ),
        });
    };
    if !found.join(BUILT_MARKER).is_file() {
        return Err(CliError::Flag {
            flag: "dir",
            reason: format!(
                "{} is missing: build the page first with `bash web/build.sh`",
                text::path(&found.join(BUILT_MARKER))
            ),
        });
    }
    Ok(found.canonicalize().unwrap_or_else(|_| found.clone()))
}

/// The `Content-Type` of a file by its extension.
pub fn mime_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file a request path names under `root`, or `None` for paths that try to leave it.
fn file_for(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let decoded = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    Some(out)
}

/// `%xx` escapes decoded; `None` for malformed ones or non-UTF-8 results.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn serve(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Headers are read and ignored: every response closes the connection.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut out = stream;
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut out,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
            true,
        );
    }
    let body_wanted = method == "GET";
    match file_for(root, target) {
        Some(file) => match std::fs::read(&file) {
            Ok(body) => respond(&mut out, "200 OK", mime_type(&file), &body, body_wanted),
            Err(_) => respond(
                &mut out,
                "404 Not Found",
                "text/plain; charset=utf-8",
                format!("not found: {target}\n").as_bytes(),
                body_wanted,
            ),
        },
        None => respond(
            &mut out,
            "400 Bad Request",
            "text/plain; charset=utf-8",
            b"bad path\n",
            body_wanted,
        ),
    }
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    if with_body {
        out.write_all(body)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_and_scripts_get_their_mime_types() {
        assert_eq!(
            mime_type(Path::new("pkg/stde_web_bg.wasm")),
            "application/wasm"
        );
        assert!(mime_type(Path::new("app.js")).starts_with("text/javascript"));
        assert!(mime_type(Path::new("index.html")).starts_with("text/html"));
        assert!(mime_type(Path::new("style.css")).starts_with("text/css"));
    }

    #[test]
    fn server_answers_with_the_file_and_its_type() {
        let root = std::env::temp_dir().join(format!("stde-web-serve-{}", std::process::id()));
        std::fs::create_dir_all(root.join("pkg")).expect("temp dir");
        std::fs::write(root.join("pkg/stde_web_bg.wasm"), b"\0asm\x01\0\0\0").expect("write");
        std::fs::write(root.join("index.html"), b"<!doctype html>").expect("write");
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = root.clone();
        std::thread::spawn(move || serve_forever(&listener, &served));
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).expect("connect");
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
            let mut reply = Vec::new();
            std::io::Read::read_to_end(&mut s, &mut reply).expect("read");
            reply
        };
        let wasm = get("/pkg/stde_web_bg.wasm");
        let text = String::from_utf8_lossy(&wasm);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("Content-Type: application/wasm\r\n"),
            "{text}"
        );
        assert!(wasm.ends_with(b"\0asm\x01\0\0\0"));
        let index = String::from_utf8_lossy(&get("/")).to_string();
        assert!(
            index.contains("text/html") && index.ends_with("<!doctype html>"),
            "{index}"
        );
        assert!(String::from_utf8_lossy(&get("/nope.js")).starts_with("HTTP/1.1 404"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_unbuilt_page_is_refused_with_the_build_command() {
        let dir = std::env::temp_dir().join(format!("stde-web-unbuilt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let e = resolve_dir(&dir).expect_err("no pkg/");
        assert!(
            e.to_string().contains("pkg/stde_web.js") && e.to_string().contains("web/build.sh"),
            "{e}"
        );
        assert_eq!(e.exit_code(), crate::error::EXIT_INPUT);
        std::fs::create_dir_all(dir.join("pkg")).expect("pkg");
        std::fs::write(dir.join(BUILT_MARKER), b"").expect("marker");
        assert!(resolve_dir(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn request_paths_stay_inside_the_root() {
        let root = Path::new("/srv/www");
        assert_eq!(
            file_for(root, "/pkg/stde_web.js?v=1"),
            Some(root.join("pkg/stde_web.js"))
        );
        assert_eq!(file_for(root, "/a%20b.txt"), Some(root.join("a b.txt")));
        assert_eq!(file_for(root, "/../etc/passwd"), None);
        assert_eq!(file_for(root, "/pkg/%2e%2e/%2e%2e/x"), None);
        assert_eq!(file_for(root, "/%zz"), None);
    }
}
