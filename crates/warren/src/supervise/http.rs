//! The HTTP probe: one GET, passed by a 2xx answer (or the status the probe expects).
//!
//! Through `ureq` with no TLS and no default features: the smallest well-kept client that
//! does plain HTTP/1.1 (hyper or reqwest would bring a connection pool, tower and more for one
//! GET every few seconds). It blocks, so the GET runs on tokio's blocking pool; ureq's own
//! global timeout bounds that thread even when the caller stops waiting for it.

use std::time::Duration;

use super::plan::HttpProbe;
use super::probe::short;

/// One GET of `probe.url`; the reason it failed, in words, otherwise.
pub(super) async fn get(probe: &HttpProbe, timeout: Duration) -> Result<(), String> {
    let url = probe.url.clone();
    let request = tokio::task::spawn_blocking(move || {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // A probe asks this program, never a proxy named in warren's environment.
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            .build();
        let agent = ureq::Agent::new_with_config(config);
        agent.get(&url).call().map(|response| response.status().as_u16())
    });
    let status = match request.await {
        Ok(Ok(status)) => status,
        Ok(Err(ureq::Error::Timeout(_))) => return Err(format!("no answer in {}", short(timeout))),
        Ok(Err(err)) => return Err(format!("GET {}: {err}", probe.url)),
        Err(err) => return Err(format!("GET {}: probe task failed: {err}", probe.url)),
    };
    match probe.status {
        Some(expected) if status == expected => Ok(()),
        None if (200..300).contains(&status) => Ok(()),
        Some(expected) => Err(format!("HTTP {status} (expected {expected})")),
        None => Err(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// Answers each connection with `answer`, or never answers when it is `None`.
    fn server(answer: Option<&'static str>) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/healthz", listener.local_addr().expect("address"));
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            match answer {
                Some(answer) => {
                    let _ = stream.write_all(answer.as_bytes());
                }
                None => std::thread::sleep(Duration::from_millis(500)),
            }
        });
        (url, thread)
    }

    #[tokio::test]
    async fn a_2xx_passes_and_other_statuses_say_which() {
        let (url, thread) = server(Some("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(get(&HttpProbe { url, status: None }, Duration::from_secs(5)).await, Ok(()));
        thread.join().expect("server");
        let (url, thread) = server(Some("HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!(get(&HttpProbe { url, status: None }, Duration::from_secs(5)).await, Err("HTTP 503".into()));
        thread.join().expect("server");
        let (url, thread) = server(Some("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        let expected = get(&HttpProbe { url, status: Some(418) }, Duration::from_secs(5)).await;
        assert_eq!(expected, Err("HTTP 200 (expected 418)".into()));
        thread.join().expect("server");
    }

    #[tokio::test]
    async fn silence_is_no_answer_in_the_timeout() {
        let (url, thread) = server(None);
        let result = get(&HttpProbe { url, status: None }, Duration::from_millis(100)).await;
        assert_eq!(result, Err("no answer in 100ms".into()));
        thread.join().expect("server");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_error() {
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
        let probe = HttpProbe { url: format!("http://127.0.0.1:{port}/"), status: None };
        let reason = get(&probe, Duration::from_secs(5)).await.expect_err("nothing listens");
        assert!(reason.contains("refused"), "{reason}");
    }
}
