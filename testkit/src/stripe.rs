//! The Stripe emulator: PyPI `localstripe` behind a recording proxy
//! (`testkit/py/stripe_emulator.py`), started once per test binary on loopback.
//!
//! Our client talks to the proxy. The proxy records every request (method, path, form
//! parameters, `Stripe-Account`, `Idempotency-Key`) and forwards it to localstripe, removing only
//! the Connect parameters localstripe rejects (`application_fee_amount`,
//! `application_fee_percent`). Tests assert on the recording for what Stripe would have received
//! and on localstripe's objects for the resulting state.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::process::{on_exit, wait_until};

/// A secret key localstripe accepts (any `sk_…`).
pub const STRIPE_TEST_KEY: &str = "sk_test_platform_tests";

/// The running emulator.
#[derive(Debug)]
pub struct StripeEmulator {
    /// Proxy port: point the client's API base here.
    pub port: u16,
}

static EMU: OnceLock<StripeEmulator> = OnceLock::new();

/// Starts the emulator on first call.
pub fn stripe() -> &'static StripeEmulator {
    EMU.get_or_init(|| {
        let port = crate::free_port();
        let inner = crate::free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/stripe_emulator.py");
        let child = Command::new("python3")
            .args([script, &port.to_string(), &inner.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("testkit: start python3 (is python3 installed?)");
        on_exit(format!("kill {}", child.id()));
        let pid = child.id();
        std::mem::forget(child);
        assert!(
            wait_until(Duration::from_secs(20), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", inner)).is_ok()
            }),
            "testkit: the Stripe emulator (pid {pid}) did not start; install it with \
             `python3 -m pip install -r ops/requirements-test.txt`"
        );
        StripeEmulator { port }
    })
}

impl StripeEmulator {
    /// API base URL for the client under test.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One HTTP/1.1 request; returns status and JSON body.
    pub fn call(&self, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the emulator");
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {STRIPE_TEST_KEY}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write to the emulator");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read from the emulator");
        let status: u16 = out
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("emulator answered garbage: {out}"));
        let json = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        // aiohttp answers with Content-Length; the body is the JSON document.
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }

    /// Every request recorded so far (all tests of this binary share the emulator: filter by
    /// something unique to the test, such as a metadata id or idempotency key).
    pub fn recording(&self) -> Vec<Value> {
        match self.call("GET", "/_recording", &[]) {
            (200, Value::Array(a)) => a,
            other => panic!("emulator recording: {other:?}"),
        }
    }

    /// A card PaymentMethod as Stripe.js would create it in the donor's browser.
    pub fn card_payment_method(&self) -> String {
        let (status, pm) = self.call(
            "POST",
            "/v1/payment_methods",
            &[
                ("type", "card"),
                ("card[number]", "4242424242424242"),
                ("card[exp_month]", "12"),
                ("card[exp_year]", "2034"),
                ("card[cvc]", "123"),
            ],
        );
        assert_eq!(status, 200, "create payment method: {pm}");
        pm["id"].as_str().expect("payment method id").to_owned()
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'[' | b']' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A recorded request's form parameter (first value).
pub fn param<'a>(request: &'a Value, key: &str) -> Option<&'a str> {
    request["params"]
        .as_array()?
        .iter()
        .find(|p| p[0].as_str() == Some(key))
        .and_then(|p| p[1].as_str())
}
