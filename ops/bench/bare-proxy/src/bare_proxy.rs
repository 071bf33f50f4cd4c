//! The floor for router benchmarks: a Pingora proxy that only forwards to one upstream, with no
//! tenant logic, header work, metrics or logging.
//!
//! Usage: `bare-proxy <listen addr> <upstream addr> [threads] [steal|nosteal]`
//!
//! The runtime mode defaults to `nosteal`, the router's default, so both run on the same
//! kind of runtime.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::RunArgs;
use pingora::upstreams::peer::HttpPeer;

/// Same allocator as the router, so the comparison measures tenant logic, not malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Forward {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: bare-proxy <listen> <upstream> [threads] [steal|nosteal]");
        std::process::exit(64);
    }
    let Ok(upstream) = args[2].parse() else {
        eprintln!("bare-proxy: upstream must be host:port");
        std::process::exit(64);
    };
    let conf = ServerConf {
        threads: args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1),
        work_stealing: args.get(4).is_some_and(|m| m == "steal"),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = http_proxy_service(&server.configuration, Forward { upstream });
    svc.add_tcp(&args[1]);
    server.add_service(svc);
    server.run(RunArgs::default());
}
