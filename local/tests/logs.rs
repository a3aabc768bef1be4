//! What the logs hold when an operator turns them all the way up (issue 22,
//! item 4): `sessions serve` (the functions' logging, the same routes) at
//! `RUST_LOG=trace` serves a session's whole life, and nothing it logged
//! holds the session's data, its lock token or a whole session id.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{HttpConnection, HttpRequest, HttpResponse};
use serde_json::json;

/// `sessions serve` at `RUST_LOG=trace`, everything it prints in `log`.
struct Server {
    child: Child,
    log: std::path::PathBuf,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        let log = std::env::temp_dir().join(format!("sessions-trace-{}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sessions"))
            .arg("serve")
            .env("PORT", "0")
            .env("DYNAMODB_PORT", "0")
            .env("TABLE_NAME", "sessions")
            .env("LOCKING_STRATEGY", "pessimistic")
            .env("RUST_LOG", "trace")
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
            .env_remove("SIMULATE_CAPACITY")
            .env_remove("SIMULATE_FAULTS")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the log file"))
            .stderr(file)
            .spawn()
            .expect("sessions starts");
        let started = Instant::now();
        let addr = loop {
            let printed = std::fs::read_to_string(&log).unwrap_or_default();
            let listening = printed.lines().find_map(|line| line.strip_prefix("Session API: http://"));
            if let Some(addr) = listening.and_then(|rest| rest.split_whitespace().next()) {
                break addr.parse().expect("an address");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "sessions serve did not start:\n{printed}");
            std::thread::sleep(Duration::from_millis(50));
        };
        Server { child, log, addr }
    }

    async fn call(&self, request: HttpRequest) -> HttpResponse {
        let mut connection = HttpConnection::open(self.addr).await.expect("the server answers");
        connection.send(&request).await.expect("an answer")
    }

    /// Stops the server; everything it printed.
    fn stop(mut self) -> String {
        self.child.kill().expect("the server stops");
        let _ = self.child.wait();
        let mut printed = String::new();
        std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut printed)).expect("the log");
        let _ = std::fs::remove_file(&self.log);
        printed
    }
}

#[tokio::test]
async fn at_trace_the_logs_hold_no_session_data_token_or_whole_id() {
    let server = Server::start();
    let secret = "hunter2-correct-horse-battery";
    let created = server.call(HttpRequest::new("POST", "/sessions").json(&json!({ "password": secret }))).await;
    assert_eq!(created.status, 201, "{created}");
    let id = created.expect_json()["id"].as_str().unwrap().to_string();
    let locked = server.call(HttpRequest::new("GET", format!("/sessions/{id}"))).await;
    assert_eq!(locked.status, 200, "{locked}");
    let token = locked.header("x-session-lock-token").expect("a lock token").to_string();
    let put = HttpRequest::new("PUT", format!("/sessions/{id}"))
        .header("x-session-lock-token", token.clone())
        .json(&json!({ "password": secret, "n": 1 }));
    assert_eq!(server.call(put).await.status, 200);
    let regenerated = server.call(HttpRequest::new("POST", format!("/sessions/{id}/regenerate"))).await;
    assert_eq!(regenerated.status, 201, "{regenerated}");
    let new_id = regenerated.expect_json()["id"].as_str().unwrap().to_string();
    let cookie = format!("PHPSESSID={new_id}");
    assert_eq!(
        server.call(HttpRequest::new("GET", "/session?read_and_close=1").header("cookie", cookie)).await.status,
        200
    );
    assert_eq!(server.call(HttpRequest::new("DELETE", format!("/sessions/{new_id}"))).await.status, 204);

    let printed = server.stop();
    let requests = printed.lines().filter(|line| line.contains(r#""message":"request""#)).count();
    assert!(requests >= 6, "the server logged its requests (harness check):\n{printed}");
    let marker = token.split('.').next().unwrap();
    for (what, needle) in [("data", secret), ("lock token", marker), ("id", &id), ("regenerated id", &new_id)] {
        let leaks: Vec<&str> = printed.lines().filter(|line| line.contains(needle)).take(3).collect();
        assert!(leaks.is_empty(), "the logs hold the session's {what}:\n{}", leaks.join("\n"));
    }
}
