//! A small HTTP/1.1 file server on 127.0.0.1 that misbehaves on purpose: wrong statuses, bodies
//! cut short, corrupted, trickled or endless, redirects. One thread per connection, one request
//! per connection; it stops when dropped. It also records the requests it saw.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the server answers every request for a file.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault {
    /// Serve the file.
    None,
    /// Answer with this status and no body.
    Status(u16),
    /// Send half of the body, then close the connection.
    DropMidBody,
    /// Flip a byte in the middle of the body.
    Corrupt,
    /// Send the body one byte per second.
    Trickle,
    /// Send the headers of a chunked body, then data without end.
    Endless,
    /// Redirect to the same path on another port.
    RedirectTo(u16),
}

/// A running server.
pub(crate) struct FaultServer {
    pub(crate) port: u16,
    /// Request lines and headers seen, one string per request.
    pub(crate) requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Serves `root` with `fault`.
    pub(crate) fn start(root: PathBuf, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, seen, stopping) =
                    (root.clone(), Arc::clone(&seen), Arc::clone(&stopping));
                std::thread::spawn(move || serve(stream, &root, fault, &seen, &stopping));
            }
        });
        Self {
            port,
            requests,
            stop,
            accept: Some(accept),
        }
    }

    /// The base URL.
    pub(crate) fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Requests whose request line contains `needle`.
    pub(crate) fn count(&self, needle: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.lines().next().unwrap_or("").contains(needle))
            .count()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    root: &std::path::Path,
    fault: Fault,
    seen: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        request.push_str(&line);
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    seen.lock().unwrap().push(request);
    let mut out = stream;
    let file = root.join(path.trim_start_matches('/'));
    let body = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => body,
        _ => {
            let _ = out.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
    };
    let head = |status: &str, len: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    let _ = match fault {
        Fault::None => out.write_all(head("200 OK", body.len()).as_bytes()).and_then(|()| out.write_all(&body)),
        Fault::Status(code) => out.write_all(head(&format!("{code} Fault"), 0).as_bytes()),
        Fault::DropMidBody => out.write_all(head("200 OK", body.len()).as_bytes()).and_then(|()| out.write_all(&body[..body.len() / 2])),
        Fault::Corrupt => {
            let mut body = body;
            let mid = body.len() / 2;
            body[mid] ^= 0x20;
            out.write_all(head("200 OK", body.len()).as_bytes()).and_then(|()| out.write_all(&body))
        }
        Fault::Trickle => {
            let _ = out.write_all(head("200 OK", body.len()).as_bytes());
            for byte in &body {
                if stop.load(Ordering::Relaxed) || out.write_all(std::slice::from_ref(byte)).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        }
        Fault::Endless => {
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            let block = vec![0x28u8; 64 * 1024];
            let framed = [format!("{:x}\r\n", block.len()).into_bytes(), block, b"\r\n".to_vec()].concat();
            while !stop.load(Ordering::Relaxed) && out.write_all(&framed).is_ok() {}
            Ok(())
        }
        Fault::RedirectTo(port) => out.write_all(
            format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{port}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        ),
    };
}
