//! `router` binary: parses the command line and hands over to the library.

use clap::Parser;

/// mimalloc instead of glibc's allocator: Pingora allocates per request, and the router
/// benchmark measured glibc malloc/free at ~16% of CPU. Its v2 line (the workspace enables the
/// crate's `v2` feature): v3 freed and re-fetched a whole page on every request here
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = router::cli::main(router::cli::Cli::parse());
    tenant_config::runtime::flush_logs();
    std::process::exit(code);
}
