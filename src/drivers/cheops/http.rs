//! A small HTTP/1.1 client for the Cheops API: multipart POSTs and GETs
//! whose bodies are read line by line as they stream in (`dz cheops`, the
//! tests and the bench).

use std::time::Duration;

use rand::RngExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// One part of a multipart form; `file` names an attached file.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub file: Option<String>,
    pub data: Vec<u8>,
}

impl Part {
    pub fn text(name: &str, value: &str) -> Part {
        Part {
            name: name.into(),
            file: None,
            data: value.as_bytes().to_vec(),
        }
    }
}

enum Framing {
    Chunked { left: usize, done: bool },
    Length(usize),
    Close,
}

/// A response whose body is read as it arrives.
pub struct HttpResponse {
    pub status: u16,
    rd: BufReader<TcpStream>,
    framing: Framing,
    pending: Vec<u8>,
}

fn broken(url: &str, e: impl std::fmt::Display) -> Error {
    Error::runtime(format!("{url}: {e}"))
}

fn multipart(parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = p
            .file
            .as_deref()
            .map(|f| format!("; filename=\"{}\"", f.replace('"', "")))
            .unwrap_or_default();
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"{file}\r\n\r\n",
                p.name.replace('"', "")
            )
            .as_bytes(),
        );
        body.extend_from_slice(&p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// `base` is `http://host:port`.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    parts: Option<&[Part]>,
) -> Result<HttpResponse> {
    let url = format!("{base}{path}");
    let host = base
        .strip_prefix("http://")
        .ok_or_else(|| Error::input(format!("{base}: only http:// URLs")))?;
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(host))
        .await
        .map_err(|_| broken(&url, "connect timed out"))?
        .map_err(|e| broken(&url, e))?;
    let _ = stream.set_nodelay(true);
    let (content, body) = match parts {
        Some(parts) => {
            let boundary = format!("dz{:016x}", rand::rng().random::<u64>());
            (
                format!("Content-Type: multipart/form-data; boundary={boundary}\r\n"),
                multipart(parts, &boundary),
            )
        }
        None => (String::new(), Vec::new()),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{content}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut rd = BufReader::new(stream);
    rd.get_mut()
        .write_all(&[head.as_bytes(), &body].concat())
        .await
        .map_err(|e| broken(&url, e))?;
    let mut status_line = String::new();
    rd.read_line(&mut status_line)
        .await
        .map_err(|e| broken(&url, e))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| broken(&url, format!("not an HTTP answer: {status_line:?}")))?;
    let mut framing = Framing::Close;
    loop {
        let mut h = String::new();
        if rd.read_line(&mut h).await.map_err(|e| broken(&url, e))? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" if v.trim().eq_ignore_ascii_case("chunked") => {
                framing = Framing::Chunked {
                    left: 0,
                    done: false,
                }
            }
            "content-length" => framing = Framing::Length(v.trim().parse().unwrap_or(0)),
            _ => {}
        }
    }
    Ok(HttpResponse {
        status,
        rd,
        framing,
        pending: Vec::new(),
    })
}

impl HttpResponse {
    /// More body bytes, or `None` at its end.
    async fn chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 8192];
        match &mut self.framing {
            Framing::Length(0) | Framing::Chunked { done: true, .. } => Ok(None),
            Framing::Length(left) => {
                let want = (*left).min(buf.len());
                let n = self.rd.read(&mut buf[..want]).await?;
                *left -= n;
                Ok((n > 0).then(|| buf[..n].to_vec()))
            }
            Framing::Close => {
                let n = self.rd.read(&mut buf).await?;
                Ok((n > 0).then(|| buf[..n].to_vec()))
            }
            Framing::Chunked { left, done } => {
                if *left == 0 {
                    let mut size = String::new();
                    // The CRLF ending the previous chunk, then the size.
                    while size.trim().is_empty() {
                        size.clear();
                        if self.rd.read_line(&mut size).await? == 0 {
                            *done = true;
                            return Ok(None);
                        }
                    }
                    let hex = size.trim().split(';').next().unwrap_or("0");
                    *left = usize::from_str_radix(hex, 16).unwrap_or(0);
                    if *left == 0 {
                        *done = true;
                        return Ok(None);
                    }
                }
                let want = (*left).min(buf.len());
                let n = self.rd.read(&mut buf[..want]).await?;
                *left -= n;
                Ok((n > 0).then(|| buf[..n].to_vec()))
            }
        }
    }

    /// The next line of the body (without its newline), as soon as it has
    /// arrived; `None` at the end.
    pub async fn line(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.pending, rest);
                line.pop();
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            match self
                .chunk()
                .await
                .map_err(|e| Error::runtime(e.to_string()))?
            {
                Some(b) => self.pending.extend_from_slice(&b),
                None if self.pending.is_empty() => return Ok(None),
                None => {
                    let line = std::mem::take(&mut self.pending);
                    return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
                }
            }
        }
    }

    /// The whole body.
    pub async fn text(&mut self) -> Result<String> {
        let mut out = Vec::new();
        while let Some(l) = self.line().await? {
            out.push(l);
        }
        Ok(out.join("\n"))
    }
}
